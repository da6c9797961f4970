import type { Config } from "../edge/config.ts";
import {
  badGateway,
  fetchOrigin,
  isHtml,
  type OriginTarget,
  originRequest,
  passThrough,
  relayHeaders,
  rewrittenHeaders,
} from "./proxy.ts";

/**
 * A proxied request outside the reserved prefix. The origin fetch starts first and nothing waits
 * on it; non-HTML streams back untouched, HTML streams through HTMLRewriter.
 */
export async function servePage(request: Request, config: Config, target: OriginTarget): Promise<Response> {
  const proxyUrl = new URL(request.url);
  const origin = await fetchOrigin(originRequest(request, target), target);
  if (!origin.ok) {
    console.log(JSON.stringify({ level: "warn", msg: "origin_unreachable", error: origin.error }));
    return badGateway();
  }
  const response = origin.response;
  const headers = relayHeaders(response, proxyUrl, target);
  if (!response.body || !isHtml(response) || request.method === "HEAD") return passThrough(response, headers);
  void config;
  const rewriter = new HTMLRewriter();
  return rewriter.transform(
    new Response(response.body, {
      status: response.status,
      statusText: response.statusText,
      headers: rewrittenHeaders(headers),
    }),
  );
}
