import type { Config } from "../edge/config.ts";
import { looksLikeAsset } from "../edge/context.ts";
import type { Env } from "../edge/env.ts";
import {
  NOTHING,
  type PagePersonalization,
  type PageStart,
  startPersonalization,
} from "../edge/personalize.ts";
import { log } from "../state/log.ts";
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
import { buildDeferredRewriter, buildRewriter } from "./rewrite.ts";

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
    if (p.rulesVersion) headers.set(config.RULES_HEADER, p.rulesVersion);
    headers.set(config.FAIL_OPEN_HEADER, p.failOpen.length ? p.failOpen.join(",") : "none");
    const timing = serverTiming(p.timings);
    if (timing) headers.append("server-timing", timing);
  }
}

/**
 * A proxied request outside the reserved prefix. The origin fetch starts first; personalization
 * runs beside it under its deadlines. Assets and non-GET requests never enter the decision path;
 * non-HTML streams back untouched, HTML streams through the native HTMLRewriter.
 *
 * Personalization never delays the first byte: when the origin answers before the visitor's
 * decision is ready, the page starts streaming at once and each slot waits for the decision where
 * it stands in the page (unless a redirect or a preview panel depends on it).
 */
export async function servePage(
  request: Request,
  url: URL,
  env: Env,
  ctx: ExecutionContext,
  config: Config,
  target: OriginTarget,
): Promise<Response> {
  const originResult = fetchOrigin(originRequest(request, url, target), target);
  const decides = request.method === "GET" && !looksLikeAsset(url.pathname);
  const starting: Promise<PageStart | null> = decides
    ? startPersonalization(request, url, env, ctx, config).catch((err: unknown) => {
        log("error", "personalize_failed", { error: String(err) });
        return null;
      })
    : Promise.resolve(null);

  const [origin, start] = await Promise.all([originResult, starting]);
  if (!origin.ok) {
    log("warn", "origin_unreachable", { error: origin.error });
    return badGateway();
  }
  const response = origin.response;
  const headers = relayHeaders(response, url, target);
  if (!decides || !isHtml(response) || !response.body) return passThrough(response, headers);
  try {
    return await personalized(response, headers, start, ctx, config);
  } catch (err) {
    // A bug past this point must not cost the visitor the page: the origin's, as it came.
    log("error", "page_failed_open", { error: String(err) });
    return passThrough(response, relayHeaders(response, url, target));
  }
}

async function personalized(
  response: Response,
  headers: Headers,
  start: PageStart | null,
  ctx: ExecutionContext,
  config: Config,
): Promise<Response> {
  const body = response.body!;

  const settled = start ? start.settled() : FAILED_OPEN;
  const result = start?.result ?? Promise.resolve(FAILED_OPEN);
  ctx.waitUntil(result.then(afterDecision).catch(() => undefined));
  if (!settled && start && !start.head.waitForDecision && start.head.slots.length > 0) {
    return streamBeforeDecision(response, headers, start, config);
  }
  const p = settled ?? (await result);
  if (p.redirect && response.status === 200) {
    await body.cancel();
    const redirectHeaders = new Headers({ location: p.redirect });
    decorate(redirectHeaders, p, config);
    return new Response(null, { status: 302, headers: redirectHeaders });
  }
  if (p.passThrough) {
    if (config.DEBUG_HEADERS) decorate(headers, p, config);
    return passThrough(response, headers);
  }
  decorate(headers, p, config);
  return buildRewriter(p.plan).transform(rewritten(response, headers));
}

/**
 * Off the critical path: a failed-open decision is logged (the one report of it when the page
 * streamed before the decision), then the page view and exposures are recorded.
 */
async function afterDecision(p: PagePersonalization): Promise<unknown> {
  if (p.failOpen.length > 0)
    log("warn", "failed_open", { reasons: p.failOpen, rulesVersion: p.rulesVersion });
  return p.record?.();
}

function rewritten(response: Response, headers: Headers): Response {
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers: rewrittenHeaders(headers),
  });
}

/**
 * The page streams now; its slots fill in as the decision arrives. Headers are set from what is
 * known: the page has slots for this visitor, so it is private; whether personalization failed
 * open is not known yet, and the header says so (the logs carry the outcome).
 */
function streamBeforeDecision(
  response: Response,
  headers: Headers,
  start: PageStart,
  config: Config,
): Response {
  const { head, result } = start;
  decorate(
    headers,
    { ...NOTHING, personalized: true, setCookies: head.setCookies, rulesVersion: head.rulesVersion },
    config,
  );
  if (config.DEBUG_HEADERS) headers.set(config.FAIL_OPEN_HEADER, "deferred");
  const changes = result.then((p) => p.plan.changes);
  return buildDeferredRewriter(head.slots, changes, head.bodyEnd).transform(rewritten(response, headers));
}
