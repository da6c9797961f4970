import type { Config } from "../edge/config.ts";
import { looksLikeAsset } from "../edge/context.ts";
import type { Env } from "../edge/env.ts";
import { NOTHING, type PagePersonalization, personalizePage } from "../edge/personalize.ts";
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
import { buildRewriter } from "./rewrite.ts";

const FAILED_OPEN: PagePersonalization = { ...NOTHING, failOpen: ["personalization"] };

function serverTiming(timings: Readonly<Record<string, number>>): string {
  return Object.entries(timings)
    .map(([name, ms]) => `ns-${name};dur=${ms.toFixed(2)}`)
    .join(", ");
}

function decorate(headers: Headers, p: PagePersonalization, config: Config): void {
  for (const cookie of p.setCookies) headers.append("set-cookie", cookie);
  // A personalized page, or one that sets a visitor's cookie, is that visitor's alone.
  if (p.personalized || p.setCookies.length > 0) {
    headers.set("cache-control", "private, no-store");
    headers.delete("expires");
    headers.append("vary", "Cookie");
  }
  if (config.DEBUG_HEADERS) {
    if (p.rulesVersion) headers.set("x-northstar-rules", p.rulesVersion);
    headers.set("x-northstar-fail-open", p.failOpen.length ? p.failOpen.join(",") : "none");
    const timing = serverTiming(p.timings);
    if (timing) headers.append("server-timing", timing);
  }
}

/**
 * A proxied request outside the reserved prefix. The origin fetch starts first; personalization
 * runs beside it under its deadlines. Assets and non-GET requests never enter the decision path;
 * non-HTML streams back untouched, HTML streams through the native HTMLRewriter.
 */
export async function servePage(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  config: Config,
  target: OriginTarget,
): Promise<Response> {
  const url = new URL(request.url);
  const originResult = fetchOrigin(originRequest(request, target), target);
  const decides = request.method === "GET" && !looksLikeAsset(url.pathname);
  const personalization = decides
    ? personalizePage(request, env, ctx, config).catch((err: unknown) => {
        console.log(JSON.stringify({ level: "error", msg: "personalize_failed", error: String(err) }));
        return FAILED_OPEN;
      })
    : Promise.resolve(FAILED_OPEN);

  const [origin, p] = await Promise.all([originResult, personalization]);
  if (!origin.ok) {
    console.log(JSON.stringify({ level: "warn", msg: "origin_unreachable", error: origin.error }));
    return badGateway();
  }
  const response = origin.response;
  const headers = relayHeaders(response, url, target);
  if (!decides || !isHtml(response) || !response.body) return passThrough(response, headers);
  if (p.record) ctx.waitUntil(p.record().catch(() => undefined));
  if (p.redirect && response.status === 200) {
    await response.body.cancel();
    const redirectHeaders = new Headers({ location: p.redirect });
    decorate(redirectHeaders, p, config);
    return new Response(null, { status: 302, headers: redirectHeaders });
  }
  if (p.passThrough) {
    if (config.DEBUG_HEADERS) decorate(headers, p, config);
    return passThrough(response, headers);
  }
  decorate(headers, p, config);
  return buildRewriter(p.plan).transform(
    new Response(response.body, {
      status: response.status,
      statusText: response.statusText,
      headers: rewrittenHeaders(headers),
    }),
  );
}
