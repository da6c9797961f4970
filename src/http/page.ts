import { isBot, looksLikeAsset } from "../edge/context.ts";
import {
  NO_PERSONALIZATION,
  type PagePersonalization,
  type PageStart,
  startPersonalization,
  untouchedPage,
} from "../edge/personalize.ts";
import { buildDeferredRewriter, buildRewriter } from "../edge/rewrite.ts";
import type { Config } from "../platform/config.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { notRecorded } from "../platform/not-recorded.ts";
import { activeRules } from "../state/rules-loader.ts";
import {
  badGateway,
  fetchOrigin,
  gatewayTimeout,
  isHtml,
  type OriginTarget,
  originRequest,
  passThrough,
  privateToVisitor,
  relayHeaders,
  rewrittenHeaders,
} from "./proxy.ts";

const FAILED_OPEN: PagePersonalization = { ...NO_PERSONALIZATION, failOpen: ["personalization"] };

function serverTiming(timings: Readonly<Record<string, number>>): string {
  return Object.entries(timings)
    .map(([name, ms]) => `ns-${name};dur=${ms.toFixed(2)}`)
    .join(", ");
}

/**
 * A page is the visitor's own when the personalization path had anything to do on it, whatever it
 * decided: a shared cache that kept one visitor's default page would serve it to the next visitor,
 * whose slots would then never be filled, and whose page view would never be counted.
 */
function visitorsOwn(start: PageStart | null, personalization: PagePersonalization): boolean {
  if (!personalization.passThrough || personalization.personalized || personalization.setCookies.length > 0)
    return true;
  return start !== null && (start.outline.slots.length > 0 || start.outline.waitForDecision);
}

function decorate(
  headers: Headers,
  personalization: PagePersonalization,
  config: Config,
  own: boolean = personalization.personalized || personalization.setCookies.length > 0,
): void {
  const { setCookies, rulesVersion, failOpen, timings } = personalization;
  for (const cookie of setCookies) headers.append("set-cookie", cookie);
  // A page that depended on the visitor, or sets their cookie, is that visitor's alone.
  if (own) privateToVisitor(headers);
  if (config.DEBUG_HEADERS) {
    if (rulesVersion) headers.set(config.RULES_HEADER, rulesVersion);
    headers.set(config.FAIL_OPEN_HEADER, failOpen.length ? failOpen.join(",") : "none");
    const timing = serverTiming(timings);
    if (timing) headers.append("server-timing", timing);
  }
}

/**
 * A proxied request outside the reserved prefix. The origin request leaves first; personalization
 * starts in the next turn of the event loop and runs beside it under its deadlines (a page the rules
 * in memory leave alone starts at once, with nothing to do). Assets and non-GET requests never
 * enter the decision path; non-HTML streams back untouched, HTML streams through the native
 * HTMLRewriter.
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
  const originResult = fetchOrigin(originRequest(request, url, target), target, config.ORIGIN_TIMEOUT_MS);
  const decides = request.method === "GET" && !looksLikeAsset(url.pathname);
  const headOfPage =
    request.method === "HEAD" && !looksLikeAsset(url.pathname)
      ? headIsVisitorsOwn(request, url, env, ctx, config)
      : Promise.resolve(false);
  // A page the rules already in memory leave alone starts at once; any other waits a turn.
  const untouched = decides ? untouchedPage(request, url, env, config) : null;
  const starting: Promise<PageStart | null> =
    !decides || untouched
      ? Promise.resolve(untouched)
      : originSent()
          .then(() => startPersonalization(request, url, env, ctx, config))
          .catch((err: unknown) => {
            log("error", "personalize_failed", { error: String(err) });
            return null;
          });

  const [origin, start, privateHead] = await Promise.all([originResult, starting, headOfPage]);
  if (!origin.ok) {
    if (origin.reason === "timeout") {
      log("warn", "origin_timeout", { timeoutMs: config.ORIGIN_TIMEOUT_MS });
      return gatewayTimeout();
    }
    log("warn", "origin_unreachable", { error: origin.error });
    return badGateway();
  }
  const response = origin.response;
  // Never a value the client chose when the public origin is configured; else the host the request
  // was routed on (in production one of the worker's routes; under `wrangler dev`, the Host header).
  const publicOrigin = config.PUBLIC_ORIGIN ?? url.origin;
  const headers = relayHeaders(response, publicOrigin, target);
  if (privateHead && isHtml(response)) privateToVisitor(headers);
  if (!decides || !isHtml(response) || !response.body) return passThrough(response, headers);
  try {
    return await personalized(response, headers, start, ctx, config);
  } catch (err) {
    // A bug past this point must not cost the visitor the page: the origin's, as it came.
    log("error", "page_failed_open", { error: String(err) });
    const fallback = relayHeaders(response, publicOrigin, target);
    if (visitorsOwn(start, FAILED_OPEN)) privateToVisitor(fallback);
    return passThrough(response, fallback);
  }
}

/**
 * A later turn of the event loop. The runtime sends a request only once the JavaScript that made it
 * yields; what the personalization does at once (the cookie's check, the page's outline, a crawler's
 * or a new visitor's whole decision, a returning visitor's object call) would otherwise run before the
 * origin request leaves, and delay the first byte by as much (measured: docs/benchmarks.md).
 * `scheduler.wait`, the runtime's own timer: the proxy's deadlines are `setTimeout`s, which a test
 * may fake to run past them; this one wait is no deadline.
 */
function originSent(): Promise<void> {
  return scheduler.wait(0);
}

/**
 * Whether a GET of this page would be the visitor's own (see `visitorsOwn`), answered without
 * deciding anything: a HEAD records nothing and sets no cookie, but a shared cache may refresh a
 * stored GET from its headers, so they must be as private as the GET's. Preview links are not
 * looked at (an admin's HEAD of one keeps the origin's policy).
 */
async function headIsVisitorsOwn(
  request: Request,
  url: URL,
  env: Env,
  ctx: ExecutionContext,
  config: Config,
): Promise<boolean> {
  const rules = await activeRules(env, ctx, config.STORE_DEADLINE_MS);
  if ((rules?.compiled.pageForPath(url.pathname).placements.length ?? 0) > 0) return true;
  return config.BEACON_AUTO_INJECT && !isBot(request.headers.get("user-agent"), config.BOT_USER_AGENTS);
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
  // The recorders report their own failures; this catch is for a bug past them, never silent either.
  ctx.waitUntil(result.then(afterDecision).catch((err: unknown) => notRecorded("page_writes", err)));
  if (!settled && start && !start.outline.waitForDecision && start.outline.slots.length > 0) {
    return streamBeforeDecision(response, headers, start, config);
  }
  const personalization = settled ?? (await result);
  const own = visitorsOwn(start, personalization);
  if (personalization.redirect && response.status === 200) {
    await body.cancel();
    const redirectHeaders = new Headers({ location: personalization.redirect });
    decorate(redirectHeaders, personalization, config);
    return new Response(null, { status: 302, headers: redirectHeaders });
  }
  decorate(headers, personalization, config, own);
  if (personalization.passThrough) return passThrough(response, headers);
  return buildRewriter(personalization.plan).transform(rewritten(response, headers));
}

/**
 * Off the critical path: a failed-open decision is logged (the one report of it when the page
 * streamed before the decision), then the page view and exposures are recorded, from a later turn
 * of the event loop: the decision often lands in the same turn as the origin's first bytes, and the
 * writes' work (export lines, the queue's send, an object call) would run before those bytes are
 * written (measured: the slow-origin first byte, interleaved A/B, 0.9–2.6 ms earlier this way).
 */
async function afterDecision(personalization: PagePersonalization): Promise<unknown> {
  const { failOpen, rulesVersion, record } = personalization;
  if (failOpen.length > 0) log("warn", "failed_open", { reasons: failOpen, rulesVersion });
  if (!record) return;
  await new Promise((resolve) => setTimeout(resolve, 0));
  return record();
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
  const { outline, result } = start;
  decorate(
    headers,
    {
      ...NO_PERSONALIZATION,
      personalized: true,
      setCookies: outline.setCookies,
      rulesVersion: outline.rulesVersion,
    },
    config,
  );
  if (config.DEBUG_HEADERS) headers.set(config.FAIL_OPEN_HEADER, "deferred");
  const changes = result.then((personalization) => personalization.plan.changes);
  // The beacon's tag may carry a new visitor's first page's decision (src/edge/first-page.ts): the
  // end of the body then waits for it, as the slots above it already did. Otherwise the tag is known
  // now, and inserted without suspending the stream at `</body>`.
  const bodyEnd = outline.bodyEndAwaitsDecision
    ? result.then((personalization) => personalization.plan.bodyEnd)
    : outline.bodyEnd;
  return buildDeferredRewriter(outline.slots, changes, bodyEnd).transform(rewritten(response, headers));
}
