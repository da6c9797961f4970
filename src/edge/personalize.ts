import type { ConsentMode } from "../core/consent.ts";
import { type DecisionResult, decide } from "../core/decide.ts";
import { escapeHtml, jsonForInlineScript } from "../core/escape.ts";
import type { Consent, RequestContext, VisitorEvent } from "../core/model.ts";
import { type PageReads, READS_NOTHING_MORE } from "../core/page-state.ts";
import { decisionConsent, gpcSignal, type PrivacyFacts, privacyVerdict } from "../core/privacy.ts";
import { countExposures } from "../measure/experiment-object.ts";
import type { Config } from "../platform/config.ts";
import { deadlineIn, withDeadline } from "../platform/deadline.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { notRecorded } from "../platform/not-recorded.ts";
import type { PageSlot, PageSlots } from "../rules/index.ts";
import { sendExportRetrying } from "../state/export-producer.ts";
import { type EventRecord, eventRecord, shownRecords } from "../state/export-record.ts";
import { readTraits } from "../state/profiles.ts";
import { activeRules, heldRules, type LoadedRules, servingFallback } from "../state/rules-loader.ts";
import {
  issueVisitorId,
  readCookieValue,
  readVisitorCookie,
  sentVisitorCookie,
  visitorCookieHeader,
} from "../state/visitor-id.ts";
import { PAGE_VIEW_ID_PREFIX, type VisitorSnapshot, visitorObject } from "../state/visitor-object.ts";
import { BEACON_VERSION } from "./beacon.ts";
import { isBot, webContext } from "./context.ts";
import { firstPageClaim } from "./first-page.ts";
import { PREVIEW_COOKIE, PREVIEW_PARAM, type Preview, verifyPreview } from "./preview.ts";
import type { RewritePlan, WebChange } from "./rewrite.ts";

/**
 * Everything a proxied page needs from personalization, decided while the origin is fetched:
 * the rewrite plan, headers, and the work to record afterwards. Never rejects: every failure
 * becomes "serve the origin's page" plus a note in `failOpen`.
 */
export interface PagePersonalization {
  /** Nothing to rewrite or set: the response takes the pure pass-through path. */
  readonly passThrough: boolean;
  readonly plan: RewritePlan;
  /** True when the page differs per visitor: it must not be shared-cached. */
  readonly personalized: boolean;
  readonly redirect: string | null;
  readonly setCookies: readonly string[];
  readonly rulesVersion: string | null;
  readonly failOpen: readonly string[];
  readonly timings: Readonly<Record<string, number>>;
  /** Background work (page view, exposures, assignments) for ctx.waitUntil. */
  readonly record: (() => Promise<unknown>) | null;
}

const NO_SLOTS: PageSlots = {
  placements: [],
  slots: [],
  mayRedirect: false,
  eventHorizonMs: 0,
  reads: READS_NOTHING_MORE,
};

/** Serve the origin's page as it is (also what a failure falls back to). */
export const NO_PERSONALIZATION: PagePersonalization = {
  passThrough: true,
  plan: { changes: [], bodyEnd: "" },
  personalized: false,
  redirect: null,
  setCookies: [],
  rulesVersion: null,
  failOpen: [],
  timings: {},
  record: null,
};

/**
 * A redirect decision's target, rendered from a template that may interpolate request or profile
 * values: only an http(s) URL on this site or an absolute http(s) URL, with no control characters
 * (a CR/LF would forge a header). Anything else is refused and the page is served instead.
 */
export function safeRedirect(target: string, page: URL): string | null {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(target)) return null;
  try {
    const resolved = new URL(target, page);
    if (resolved.protocol !== "https:" && resolved.protocol !== "http:") return null;
    return resolved.origin === page.origin
      ? `${resolved.pathname}${resolved.search}${resolved.hash}`
      : resolved.toString();
  } catch {
    return null;
  }
}

/**
 * The beacon's tag. `firstPage` is a new visitor's first page's claim (src/edge/first-page.ts): the
 * beacon sends it back with its first call, which records it.
 */
function beaconTag(config: Config, autoPageView: boolean, firstPage: string | null = null): string {
  const src = `${config.NS_PREFIX}/ns.${BEACON_VERSION}.js`;
  const first = firstPage === null ? "" : ` data-first="${escapeHtml(firstPage)}"`;
  return `<script src="${escapeHtml(src)}" data-prefix="${escapeHtml(config.NS_PREFIX)}"${autoPageView ? "" : ' data-auto-pageview="false"'}${first} async></script>`;
}

function previewPanel(explanation: unknown): string {
  return `<details id="ns-preview" open style="position:fixed;bottom:0;right:0;max-width:40rem;max-height:50vh;overflow:auto;background:#fff;color:#111;border:2px solid #7c3aed;padding:.5rem;font:12px/1.4 ui-monospace,monospace;z-index:2147483647"><summary>Northstar preview</summary><pre>${escapeHtml(JSON.stringify(explanation, null, 2))}</pre></details><script type="application/json" id="ns-preview-data">${jsonForInlineScript(explanation)}</script>`;
}

async function readPreview(
  request: Request,
  url: URL,
  config: Config,
  now: number,
): Promise<{ preview: Preview; token: string } | null> {
  if (!config.ADMIN_TOKEN) return null;
  const token = url.searchParams.get(PREVIEW_PARAM) ?? readCookieValue(request, PREVIEW_COOKIE);
  if (!token) return null;
  const preview = await verifyPreview(config.ADMIN_TOKEN, token, now);
  return preview ? { preview, token } : null;
}

/** A decision to record: for whom, what it made, under which rules and privacy facts. */
export interface DecisionToRecord {
  /** The visitor's object: the canonical id the decision was made for. */
  readonly visitorId: string;
  /**
   * The id the export names them by, as their snapshot gave it (a merged cookie's person); null when
   * the snapshot did not answer: whether the person was erased is unknown, so nothing is exported.
   */
  readonly exportId: string | null;
  readonly result: Pick<DecisionResult, "exposures" | "assignments"> &
    Partial<Pick<DecisionResult, "replacedAssignments">>;
  readonly now: number;
  readonly privacy: { readonly consentMode: ConsentMode; readonly gpc: boolean };
  readonly rulesVersion: string | null;
  /**
   * The page view the snapshot counted and said its own gate lets be measured: its export line goes
   * in the same sendBatch as what was shown (docs/decisions.md, record 23).
   */
  readonly pageView?: VisitorEvent | undefined;
}

/**
 * What a decision leaves behind, written off the critical path. What was shown goes to the export
 * (docs/export.md) straight from the worker, one sendBatch; the visitor's object is called only
 * when it must keep something: exposures of capped experiences (their caps count them) and new
 * experiment assignments (sticky, and the experiment's unique exposure). So a returning visitor's
 * page with nothing new to keep makes one object call, its snapshot (docs/decisions.md, record 17).
 * The caller asks the privacy gate (measurement allowed, the snapshot not erased) before making
 * one; the object asks it again with what it holds before it keeps anything, and the experiments
 * count the visitor only when it says so. Returns null when nothing was shown or assigned. The
 * recorder never rejects: a write that fails is logged and counted (`decision_not_recorded`,
 * `experiment_exposures_not_recorded`, `export_not_sent`).
 */
export function decisionRecorder(env: Env, decision: DecisionToRecord): (() => Promise<void>) | null {
  const { visitorId, result, now, pageView } = decision;
  const exportId = decision.exportId === null ? null : decision.exportId || visitorId;
  const shown =
    exportId === null
      ? []
      : [
          ...(pageView ? [eventRecord(exportId, pageView)] : []),
          ...shownRecords(exportId, now, result.exposures, decision.rulesVersion),
        ];
  const assigned = Object.keys(result.assignments).length > 0;
  const kept = assigned || result.exposures.some((exposure) => exposure.capped !== false);
  if (shown.length === 0 && !kept) return null;
  return async () => {
    await Promise.all([
      shown.length > 0 ? sendExportRetrying(env, shown) : null,
      kept ? keepDecision(env, decision, assigned) : null,
    ]);
  };
}

/** The object keeps the capped exposures and new assignments; the experiments count the assigned. */
async function keepDecision(env: Env, decision: DecisionToRecord, assigned: boolean): Promise<void> {
  const { visitorId, result, now } = decision;
  let counted: boolean;
  try {
    counted = await visitorObject(env, visitorId).recordDecision({
      now,
      visitorId,
      exposures: result.exposures,
      assignments: result.assignments,
      replacing: result.replacedAssignments,
      ...decision.privacy,
    });
  } catch (err) {
    notRecorded("decision", err);
    return;
  }
  if (assigned && counted)
    await countInExperiments(env, visitorId, result.exposures, result.assignments, now);
}

/**
 * The visitor counted in the experiments a decision assigned them to (unique exposures per arm),
 * once their object said they may be. Never rejects: a failure is logged and counted.
 */
export function countInExperiments(
  env: Env,
  visitorId: string,
  exposures: ReadonlyArray<{ readonly experiment?: string | null; readonly variant?: string | null }>,
  assignments: Readonly<Record<string, string>>,
  now: number,
): Promise<void> {
  return countExposures(env, visitorId, exposures, assignments, now).catch((err: unknown) =>
    notRecorded("experiment_exposures", err),
  );
}

/**
 * What the response's headers and the rewriter's shape depend on, known before the visitor's state
 * is read: with it the page can start streaming while the decision is still being made.
 */
export interface PageOutline {
  /** The slots the URL's placements rewrite; a deferred handler waits for the decision at each. */
  readonly slots: readonly PageSlot[];
  /** A redirect or a preview panel depends on the decision: the response must wait for it. */
  readonly waitForDecision: boolean;
  readonly setCookies: readonly string[];
  readonly rulesVersion: string | null;
  /** The beacon tag, appended before `</body>` whatever the decision. */
  readonly bodyEnd: string;
  /**
   * The decision may change what goes before `</body>`: a new visitor's first page's tag carries
   * what it assigned and showed (src/edge/first-page.ts). Otherwise `bodyEnd` is final at once.
   */
  readonly bodyEndAwaitsDecision: boolean;
}

/** A page's personalization once started: its outline at once, the rest when decided. */
export class PageStart {
  readonly outline: PageOutline;
  /** The whole personalization; never rejects (a failure is a fail-open result). */
  readonly result: Promise<PagePersonalization>;
  #decided: PagePersonalization | null = null;

  constructor(outline: PageOutline, result: Promise<PagePersonalization>) {
    this.outline = outline;
    this.result = result;
    // `result` never rejects (see above), so this observer needs no catch of its own.
    void result.then((decided) => {
      this.#decided = decided;
    });
  }

  /** The result if it is already there, without waiting. */
  settled(): PagePersonalization | null {
    return this.#decided;
  }
}

/**
 * What the decision step works from, gathered by the first step while the origin is fetched (the
 * object the decision's closure used to capture, now named).
 */
interface PageVisit {
  readonly env: Env;
  readonly config: Config;
  readonly url: URL;
  readonly now: number;
  readonly rules: LoadedRules | null;
  readonly placements: readonly string[];
  /** How far back this page's placements read the log (worked out once per path and rules version). */
  readonly eventHorizonMs: number;
  /** What else of the visitor's state they read (worked out with the horizon). */
  readonly reads: PageReads;
  readonly preview: { preview: Preview; token: string } | null;
  readonly visitorId: string;
  /** The visitor brought a valid cookie: their object and profile are worth reading. */
  readonly returning: boolean;
  readonly bot: boolean;
  readonly gpc: boolean;
  readonly context: RequestContext;
  readonly pageView: VisitorEvent | undefined;
  readonly outline: PageOutline;
  readonly failOpen: string[];
  readonly timings: Record<string, number>;
}

/**
 * The personalization of one page, in two steps: what is known at once (the rules, the page's
 * slots, the visitor's cookie, the beacon), then the decision (`decidePage`), which the response
 * may or may not wait for.
 */
export async function startPersonalization(
  request: Request,
  url: URL,
  env: Env,
  ctx: ExecutionContext,
  config: Config,
): Promise<PageStart> {
  const now = Date.now();
  const failOpen: string[] = [];
  const timings: Record<string, number> = {};
  const bot = isBot(request.headers.get("user-agent"), config.BOT_USER_AGENTS);
  const gpc = gpcSignal(request.headers, config.RESPECT_GPC);
  // What the gate allows a visitor nobody has heard from yet: under opt-in, no cookie and no page
  // view until they grant it (the page is served from the request alone).
  const unknownVisitor = privacyVerdict({ mode: config.CONSENT_MODE, gpc, consent: {}, erased: false });
  // Crawlers are new anonymous visitors like any other (same defaults, same bucketing), never profiled.
  const readsCookie = !bot && Boolean(config.COOKIE_SECRET);
  const mayGiveCookie = readsCookie && unknownVisitor.remember;
  // A returning visitor's page never needs a new id: one is drawn only for a request without a
  // valid cookie (random bytes and base64url on every page otherwise).
  let drawn: string | null = null;
  const freshId = (): string => (drawn ??= issueVisitorId());

  // What the first byte needs, side by side rather than one after another (the origin fetch is
  // already under way): the rules, a preview link, the visitor's cookie and, for a browser that sent
  // none, the cookie to give it.
  const rulesStarted = performance.now();
  const [rules, preview, cookieId, freshCookie] = await Promise.all([
    activeRules(env, ctx, config.STORE_DEADLINE_MS).then((loaded) => {
      timings.rules = performance.now() - rulesStarted;
      return loaded;
    }),
    readPreview(request, url, config, now),
    readsCookie ? readVisitorCookie(request, config) : null,
    mayGiveCookie && !sentVisitorCookie(request, config) ? visitorCookieHeader(freshId(), config) : null,
  ]);
  if (!rules) failOpen.push("rules");
  else if (servingFallback(rules)) failOpen.push("rules-bundled");

  const page = rules?.compiled.pageForPath(url.pathname) ?? NO_SLOTS;
  if (leftAlone(page, config, preview !== null))
    return nothingToPersonalize(rules?.version ?? null, failOpen);

  const setCookies: string[] = [];
  const visitorId = cookieId ?? freshId();
  // A cookie that was sent but did not verify (rare: a rotated secret, a forged value) is replaced;
  // only then is the new one signed after the others.
  if (cookieId === null && mayGiveCookie)
    setCookies.push(freshCookie ?? (await visitorCookieHeader(freshId(), config)));
  if (preview && url.searchParams.has(PREVIEW_PARAM)) setCookies.push(previewCookie(preview.token, config));

  const injectBeacon = config.BEACON_AUTO_INJECT && !bot;
  // The proxy records the page view itself only when it also injects the beacon, so each view is
  // counted once: by the proxy here, or by the beacon. A request without a cookie touches no
  // visitor object (docs/decisions.md, record 12): its view is the beacon's first call, which only
  // a browser makes. A returning visitor's object applies the gate with the consent it holds.
  const pageView = injectBeacon && !gpc && cookieId !== null ? pageViewOf(url, now) : undefined;
  const outline: PageOutline = {
    slots: page.slots,
    waitForDecision: page.mayRedirect || preview !== null,
    setCookies,
    rulesVersion: rules?.version ?? null,
    bodyEnd: injectBeacon ? beaconTag(config, pageView === undefined) : "",
    // Only a visitor without a valid cookie has a first page's claim (see decidePage).
    bodyEndAwaitsDecision: injectBeacon && cookieId === null,
  };
  const visit: PageVisit = {
    env,
    config,
    url,
    now,
    rules,
    placements: page.placements,
    eventHorizonMs: page.eventHorizonMs,
    reads: page.reads,
    preview,
    visitorId,
    returning: cookieId !== null,
    bot,
    gpc,
    context: webContext(request, url),
    pageView,
    outline,
    failOpen,
    timings,
  };
  return new PageStart(
    outline,
    decidePage(visit).catch((err: unknown) => failedOpen(outline, err)),
  );
}

/**
 * A page known at once to be left as the origin sends it: the isolate holds fresh rules with no
 * placement on this path, the beacon is not injected and no preview is asked for. It starts with no
 * turn of the event loop and none of a page's personalization work (the cookie's check, a new
 * visitor's cookie signed for nothing): the pass-through path's budget (DESIGN.md). Null when any
 * of that is not known at once; the page then takes `startPersonalization`, which ends the same way.
 */
export function untouchedPage(request: Request, url: URL, env: Env, config: Config): PageStart | null {
  // Most sites let the beacon be injected: then no page is left alone, and this costs one check.
  if (config.BEACON_AUTO_INJECT) return null;
  // Held rules came from KV: never the bundled fallback, so nothing to report as failed open.
  const rules = heldRules(env);
  if (!rules || !leftAlone(rules.compiled.pageForPath(url.pathname), config, false)) return null;
  // Last: a page with placements never pays for reading its cookies here. A preview asked for is
  // verified on the usual path.
  if (config.ADMIN_TOKEN && (url.searchParams.has(PREVIEW_PARAM) || readCookieValue(request, PREVIEW_COOKIE)))
    return null;
  return nothingToPersonalize(rules.version, []);
}

/** No placement on the page, no beacon to add, no preview: personalization has nothing to do. */
function leftAlone(page: PageSlots, config: Config, preview: boolean): boolean {
  return page.placements.length === 0 && !config.BEACON_AUTO_INJECT && !preview;
}

/** No placement on this path, no beacon to add, no preview: the origin's page, as it is. */
function nothingToPersonalize(rulesVersion: string | null, failOpen: string[]): PageStart {
  const outline: PageOutline = {
    slots: [],
    waitForDecision: false,
    setCookies: [],
    rulesVersion,
    bodyEnd: "",
    bodyEndAwaitsDecision: false,
  };
  return new PageStart(outline, Promise.resolve({ ...NO_PERSONALIZATION, rulesVersion, failOpen }));
}

/** A bug in the decision step costs the visitor nothing but their personalization. */
function failedOpen(outline: PageOutline, err: unknown): PagePersonalization {
  log("error", "personalize_failed", { error: String(err) });
  return {
    ...NO_PERSONALIZATION,
    plan: { changes: [], bodyEnd: outline.bodyEnd },
    passThrough: outline.bodyEnd === "" && outline.setCookies.length === 0,
    setCookies: outline.setCookies,
    rulesVersion: outline.rulesVersion,
    failOpen: ["personalization"],
  };
}

function previewCookie(token: string, config: Config): string {
  return `${PREVIEW_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Lax${config.COOKIE_SECURE ? "; Secure" : ""}`;
}

function pageViewOf(url: URL, now: number): VisitorEvent {
  return {
    id: `${PAGE_VIEW_ID_PREFIX}${crypto.randomUUID()}`,
    type: "page_view",
    ts: now,
    channel: "web",
    props: { url: url.toString(), path: url.pathname },
  };
}

/** What the stores hold of a returning visitor; a new visitor, a crawler or a page without placements reads nothing. */
interface StoredVisitor {
  readonly state: VisitorSnapshot | null;
  readonly traits: Record<string, unknown>;
  /** What the person answered: nothing yet for a new visitor; unknown (null) when it could not be read. */
  readonly answered: Consent | null;
  /** The person a stitched anonymous cookie points at, else the cookie's own id. */
  readonly canonicalId: string;
}

/**
 * The decision step: the visitor's stored state and traits, the privacy gate, the engine's
 * decision turned into the rewrite plan, and the writes it leaves for afterwards.
 */
async function decidePage(visit: PageVisit): Promise<PagePersonalization> {
  const { env, config, rules, preview, bot, gpc, outline, failOpen } = visit;
  const profiled = visit.returning && !bot && visit.placements.length > 0;
  const stored: StoredVisitor = profiled
    ? await readStoredVisitor(visit, rules!)
    : { state: null, traits: {}, answered: {}, canonicalId: visit.visitorId };
  const facts: PrivacyFacts = { mode: config.CONSENT_MODE, gpc, consent: stored.answered, erased: false };
  const privacy = privacyVerdict(facts);

  const changes: WebChange[] = [];
  let redirect: string | null = null;
  let explanation: unknown = null;
  let decided: Pick<DecisionResult, "exposures" | "assignments" | "replacedAssignments"> = NO_DECISION;
  if (rules && visit.placements.length > 0) {
    const decideStarted = performance.now();
    try {
      const result = decide(rules.compiled, {
        visitorId: stored.canonicalId,
        now: visit.now,
        traits: stored.traits,
        state: stored.state,
        context: visit.context,
        consent: decisionConsent(facts, privacy),
        placements: visit.placements,
        forced: preview?.preview.forced,
        explain: preview?.preview.explain ?? false,
        // A page reads decisions, never the list of segments (a preview's explanation shows them).
        segments: preview !== null,
      });
      redirect = collectChanges(result.decisions, visit.url, changes, failOpen);
      explanation = preview ? (result.explanation ?? result) : null;
      decided = result;
    } catch (err) {
      // decide() is built never to throw; if it does, it is a bug, and the page is still served.
      log("error", "decide_threw", { error: String(err) });
      failOpen.push("decide");
      changes.length = 0;
      redirect = null;
    }
    visit.timings.decide = performance.now() - decideStarted;
  }

  // A new browser's first page: what it assigned and showed rides in the beacon's tag, recorded by
  // the beacon's first call once the browser proves to be one (docs/decisions.md, record 12).
  const claim =
    !visit.returning && !bot && outline.bodyEnd !== "" && visit.pageView === undefined && privacy.measure
      ? firstPageClaim(decided)
      : null;
  const beacon = claim === null ? outline.bodyEnd : beaconTag(config, true, claim);
  const bodyEnd = beacon + (preview ? previewPanel(explanation) : "");
  // A new visitor's decision leaves nothing behind here: the beacon's first call records it (above).
  // An erased person's page leaves nothing.
  const state = stored.state;
  const recordDecision =
    visit.returning && !bot && privacy.measure && !state?.erased
      ? decisionRecorder(env, {
          visitorId: stored.canonicalId,
          exportId: state ? state.visitorId : null,
          result: decided,
          now: visit.now,
          privacy: { consentMode: config.CONSENT_MODE, gpc },
          rulesVersion: outline.rulesVersion,
          // Both gates: the worker's (above) and the object's, as its snapshot said.
          pageView: state?.pageViewMeasured ? visit.pageView : undefined,
        })
      : null;
  const record =
    visit.pageView !== undefined || recordDecision ? pageRecorder(visit, profiled, recordDecision) : null;
  return {
    passThrough:
      changes.length === 0 && bodyEnd === "" && outline.setCookies.length === 0 && redirect === null,
    plan: { changes, bodyEnd },
    personalized: changes.length > 0 || redirect !== null || preview !== null,
    redirect,
    setCookies: outline.setCookies,
    rulesVersion: outline.rulesVersion,
    failOpen,
    timings: visit.timings,
    record,
  };
}

const NO_DECISION: Pick<DecisionResult, "exposures" | "assignments" | "replacedAssignments"> = {
  exposures: [],
  assignments: {},
  replacedAssignments: {},
};

/**
 * The visitor's object and profile, read side by side under one deadline. A visitor stitched to a
 * person by a server keeps an anonymous cookie: its profile key then points at the person's, where
 * their traits and consent are (a second read, that case only). A store that fails is named in
 * `failOpen` and the page is decided without it.
 */
async function readStoredVisitor(visit: PageVisit, rules: LoadedRules): Promise<StoredVisitor> {
  const { env, config, visitorId, now } = visit;
  let canonicalId = visitorId;
  const storeDeadline = deadlineIn(config.STORE_DEADLINE_MS);
  const [stateRead, traitsRead] = await Promise.all([
    withDeadline(
      () =>
        visitorObject(env, visitorId).snapshot({
          now,
          pageView: visit.pageView,
          visitorId,
          // Only the part of the state this page's placements read crosses the RPC (records 26
          // and 29; a preview lists segments too, so it gets what every rule reads).
          eventsSince: now - (visit.preview ? rules.compiled.eventHorizonMs : visit.eventHorizonMs),
          ...(visit.preview ? {} : { reads: visit.reads }),
          consentMode: config.CONSENT_MODE,
        }),
      storeDeadline,
    ),
    withDeadline(async () => {
      const own = await readTraits(env, visitorId);
      if (!own?.canonical || own.canonical === visitorId) return own;
      canonicalId = own.canonical;
      return readTraits(env, canonicalId);
    }, storeDeadline),
  ]);
  storeDeadline.cancel();
  visit.timings.do = stateRead.ms;
  visit.timings.kv = traitsRead.ms;
  if (!stateRead.ok) visit.failOpen.push(`do-${stateRead.reason}`);
  if (!traitsRead.ok) visit.failOpen.push(`kv-${traitsRead.reason}`);
  return {
    state: stateRead.ok ? stateRead.value : null,
    traits: traitsRead.ok && traitsRead.value ? { ...traitsRead.value.traits } : {},
    answered: traitsRead.ok ? (traitsRead.value?.consent ?? {}) : null,
    canonicalId,
  };
}

/**
 * The decisions as the rewriter's changes (pushed onto `changes`), and the first valid redirect.
 * A placement's default is written like a winner's content: the page shows what `POST /v1/decide`
 * answers for the same visitor (held out, matching nothing, or in the global holdout); only a
 * `null` default (`html: null`) keeps the origin's content.
 * A redirect the URL policy refused, or one that is not a URL, is noted and the page served.
 */
function collectChanges(
  decisions: DecisionResult["decisions"],
  url: URL,
  changes: WebChange[],
  failOpen: string[],
): string | null {
  let redirect: string | null = null;
  for (const decision of decisions) {
    if (decision.action === "redirect" && decision.experience !== null && decision.html === null) {
      // The URL policy refused the rendered target (another host, a trick): the origin's page.
      failOpen.push("redirect-refused");
      log("warn", "redirect_refused", { placement: decision.placement, experience: decision.experience });
      continue;
    }
    if (decision.action === "redirect" && decision.html) {
      const target = safeRedirect(decision.html, url);
      if (target) redirect ??= target;
      else failOpen.push("redirect-invalid");
      continue;
    }
    if (decision.html === null || !decision.selector || decision.action === "redirect") continue;
    changes.push({
      selector: decision.selector,
      action: decision.action,
      html: decision.html,
      attribute: decision.attribute ?? undefined,
    });
  }
  return redirect;
}

/**
 * The page's writes, for ctx.waitUntil: the page view (a profiled visitor's went with the snapshot
 * read) and its export line when the object's gate lets it be measured (record 23), then the
 * decision's. Never rejects: a page view that fails is logged and counted (`page_view_not_recorded`),
 * a line the queue refuses (`export_not_sent`), and the decision's recorder reports its own.
 */
function pageRecorder(
  visit: PageVisit,
  profiled: boolean,
  recordDecision: (() => Promise<void>) | null,
): () => Promise<void> {
  const { env, visitorId, pageView, now, config } = visit;
  return async () => {
    if (pageView && !profiled) {
      let line: EventRecord | null = null;
      try {
        const counted = await visitorObject(env, visitorId).snapshot({
          now,
          pageView,
          visitorId,
          consentMode: config.CONSENT_MODE,
        });
        // No profile was read for this page: the object's gate, with the consent it holds, is the
        // one that knows (GPC already kept the view from being made).
        line = measuredViewLine(counted, pageView, visitorId);
      } catch (err) {
        notRecorded("page_view", err);
      }
      if (line) await sendExportRetrying(env, [line]);
    }
    await recordDecision?.();
  };
}

/** A counted page view's export line, when its object said it may be measured and not erased. */
function measuredViewLine(
  counted: VisitorSnapshot,
  pageView: VisitorEvent,
  visitorId: string,
): EventRecord | null {
  if (!counted.pageViewMeasured || counted.erased) return null;
  return eventRecord(counted.visitorId || visitorId, pageView);
}
