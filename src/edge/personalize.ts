import type { ConsentMode } from "../core/consent.ts";
import { type DecisionResult, decide } from "../core/decide.ts";
import { escapeHtml, jsonForInlineScript } from "../core/escape.ts";
import type { Consent, RequestContext, VisitorEvent, VisitorState } from "../core/model.ts";
import { decisionConsent, gpcSignal, type PrivacyFacts, privacyVerdict } from "../core/privacy.ts";
import { experimentObject } from "../measure/experiment-do.ts";
import type { Config } from "../platform/config.ts";
import { deadlineIn, withDeadline } from "../platform/deadline.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { GLOBAL_HOLDOUT, type PageSlot, type PageSlots } from "../rules/index.ts";
import { readTraits } from "../state/profiles.ts";
import { activeRules, servingFallback } from "../state/rules-loader.ts";
import { visitorObject } from "../state/visitor-do.ts";
import {
  issueVisitorId,
  readCookieValue,
  readVisitorCookie,
  visitorCookieHeader,
} from "../state/visitor-id.ts";
import { BEACON_VERSION } from "./beacon.ts";
import { isBot, webContext } from "./context.ts";
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

const NO_SLOTS: PageSlots = { placements: [], slots: [], mayRedirect: false };

/** Serve the origin's page as it is (also what a failure falls back to). */
export const NOTHING: PagePersonalization = {
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

function beaconTag(config: Config, autoPageView: boolean): string {
  const src = `${config.NS_PREFIX}/ns.${BEACON_VERSION}.js`;
  return `<script src="${escapeHtml(src)}" data-prefix="${escapeHtml(config.NS_PREFIX)}"${autoPageView ? "" : ' data-auto-pageview="false"'} async></script>`;
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

/**
 * What a decision leaves behind, written off the critical path: exposures of capped experiences (so
 * their caps count) and new experiment assignments (sticky, and the experiment's unique exposure).
 * The visitor's object asks the privacy gate with what it holds (consent, erasure) before anything
 * is kept, and the experiments count the visitor only when it says so. Nothing is written when
 * nothing changed. Returns null when there is nothing to do.
 */
export function decisionRecorder(
  env: Env,
  visitorId: string,
  result: Pick<DecisionResult, "exposures" | "assignments"> &
    Partial<Pick<DecisionResult, "replacedAssignments">>,
  now: number,
  privacy: { readonly consentMode: ConsentMode; readonly gpc: boolean },
): (() => Promise<void>) | null {
  const capped = result.exposures.filter((x) => x.capped);
  const assigned = Object.keys(result.assignments).length > 0;
  if (capped.length === 0 && !assigned) return null;
  return async () => {
    const stub = visitorObject(env, visitorId);
    const counted = await stub.recordDecision({
      now,
      exposures: capped,
      assignments: result.assignments,
      replacing: result.replacedAssignments,
      ...privacy,
    });
    if (assigned && counted)
      await recordExperimentExposures(env, visitorId, result.exposures, result.assignments, now);
  };
}

async function recordExperimentExposures(
  env: Env,
  visitorId: string,
  exposures: DecisionResult["exposures"],
  assignments: DecisionResult["assignments"],
  now: number,
): Promise<void> {
  const arms = new Map<string, string>();
  for (const x of exposures) if (x.experiment && x.variant) arms.set(x.experiment, x.variant);
  // Held-out visitors are counted in their experiment's holdout; every visitor assigned to the
  // global holdout's groups is counted there, in whichever group (that experiment has no exposure).
  for (const [experiment, variant] of Object.entries(assignments))
    if (variant === "holdout" || experiment === GLOBAL_HOLDOUT) arms.set(experiment, variant);
  await Promise.all(
    [...arms].map(([experiment, variant]) =>
      experimentObject(env, experiment).expose([{ visitorId, variant, at: now }]),
    ),
  );
}

/**
 * What the response's headers and the rewriter's shape depend on, known before the visitor's state
 * is read: with it the page can start streaming while the decision is still being made.
 */
export interface PageHead {
  /** The slots the URL's placements rewrite; a deferred handler waits for the decision at each. */
  readonly slots: readonly PageSlot[];
  /** A redirect or a preview panel depends on the decision: the response must wait for it. */
  readonly waitForDecision: boolean;
  readonly setCookies: readonly string[];
  readonly rulesVersion: string | null;
  /** The beacon tag, appended before `</body>` whatever the decision. */
  readonly bodyEnd: string;
}

export interface PageStart {
  readonly head: PageHead;
  /** The whole personalization; never rejects (a failure is a fail-open result). */
  readonly result: Promise<PagePersonalization>;
  /** The result if it is already there, without waiting. */
  readonly settled: () => PagePersonalization | null;
}

function started(head: PageHead, result: Promise<PagePersonalization>): PageStart {
  let value: PagePersonalization | null = null;
  void result.then((p) => {
    value = p;
  });
  return { head, result, settled: () => value };
}

/** The personalization of one page, in two steps: what is known at once, then the decision. */
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

  const rulesStarted = performance.now();
  const rules = await activeRules(env, ctx, config.STORE_DEADLINE_MS);
  timings.rules = performance.now() - rulesStarted;
  if (!rules) failOpen.push("rules");
  else if (servingFallback(rules)) failOpen.push("rules-bundled");

  const page = rules?.compiled.pageForPath(url.pathname) ?? NO_SLOTS;
  const placements = page.placements;
  const preview = await readPreview(request, url, config, now);
  if (placements.length === 0 && !config.BEACON_AUTO_INJECT && !preview) {
    const nothing: PagePersonalization = { ...NOTHING, rulesVersion: rules?.version ?? null, failOpen };
    const head = {
      slots: [],
      waitForDecision: false,
      setCookies: [],
      rulesVersion: nothing.rulesVersion,
      bodyEnd: "",
    };
    return started(head, Promise.resolve(nothing));
  }

  const userAgent = request.headers.get("user-agent");
  const bot = isBot(userAgent, config.BOT_USER_AGENTS);
  const setCookies: string[] = [];
  let visitorId: string | null = null;
  if (!bot && config.COOKIE_SECRET) visitorId = await readVisitorCookie(request, config);
  const returning = visitorId !== null;
  const gpc = gpcSignal(request.headers, config.RESPECT_GPC);
  // What the gate allows a visitor nobody has heard from yet: under opt-in, no cookie and no page
  // view until they grant it (the page is served from the request alone).
  const unknownVisitor = privacyVerdict({ mode: config.CONSENT_MODE, gpc, consent: {}, erased: false });
  if (!visitorId) {
    // Crawlers are new anonymous visitors like any other (same defaults, same bucketing), never profiled.
    visitorId = issueVisitorId();
    if (!bot && config.COOKIE_SECRET && unknownVisitor.remember)
      setCookies.push(await visitorCookieHeader(visitorId, config));
  }
  if (preview && url.searchParams.has(PREVIEW_PARAM)) {
    setCookies.push(
      `${PREVIEW_COOKIE}=${preview.token}; Path=/; HttpOnly; SameSite=Lax${config.COOKIE_SECURE ? "; Secure" : ""}`,
    );
  }

  const context: RequestContext = webContext(request, url);
  const injectBeacon = config.BEACON_AUTO_INJECT && !bot;
  // The proxy records the page view itself only when it also injects the beacon, so each view is
  // counted once: by the proxy here, or by a beacon the site includes itself.
  // A returning visitor's object applies the gate with the consent it holds; a new one is asked here.
  const pageView: VisitorEvent | undefined =
    injectBeacon && !gpc && (returning || unknownVisitor.keep)
      ? {
          id: `pv:${crypto.randomUUID()}`,
          type: "page_view",
          ts: now,
          channel: "web",
          props: { url: url.toString(), path: url.pathname },
        }
      : undefined;

  const beacon = injectBeacon ? beaconTag(config, pageView === undefined) : "";
  const head: PageHead = {
    slots: page.slots,
    waitForDecision: page.mayRedirect || preview !== null,
    setCookies,
    rulesVersion: rules?.version ?? null,
    bodyEnd: beacon,
  };
  const decided = (async (): Promise<PagePersonalization> => {
    const stub = visitorObject(env, visitorId);
    let state: VisitorState | null = null;
    let traits: Record<string, unknown> = {};
    // What the person answered: nothing yet for a new visitor; unknown (null) when it could not be read.
    let answered: Consent | null = {};
    const profiled = returning && !bot && placements.length > 0;
    let canonicalId = visitorId;
    if (profiled) {
      const storeDeadline = deadlineIn(config.STORE_DEADLINE_MS);
      const [stateRead, traitsRead] = await Promise.all([
        withDeadline(
          () =>
            stub.snapshot({
              now,
              pageView,
              visitorId,
              eventsSince: now - rules!.compiled.eventHorizonMs,
              consentMode: config.CONSENT_MODE,
            }),
          storeDeadline,
        ),
        // A visitor stitched to a person by a server keeps an anonymous cookie: its profile key then
        // points at the person's, where their traits and consent are (a second read, that case only).
        withDeadline(async () => {
          const own = await readTraits(env, visitorId);
          if (!own?.canonical || own.canonical === visitorId) return own;
          canonicalId = own.canonical;
          return readTraits(env, canonicalId);
        }, storeDeadline),
      ]);
      storeDeadline.cancel();
      timings.do = stateRead.ms;
      timings.kv = traitsRead.ms;
      if (stateRead.ok) state = stateRead.value;
      else failOpen.push(`do-${stateRead.reason}`);
      if (traitsRead.ok) {
        if (traitsRead.value) {
          traits = { ...traitsRead.value.traits };
          answered = traitsRead.value.consent;
        }
      } else {
        failOpen.push(`kv-${traitsRead.reason}`);
        answered = null;
      }
    }
    const facts: PrivacyFacts = { mode: config.CONSENT_MODE, gpc, consent: answered, erased: false };
    const privacy = privacyVerdict(facts);
    const consent = decisionConsent(facts, privacy);

    let changes: WebChange[] = [];
    let redirect: string | null = null;
    let personalized = false;
    let explanation: unknown = null;
    let exposures: DecisionResult["exposures"] = [];
    let assignments: DecisionResult["assignments"] = {};
    let replacedAssignments: DecisionResult["replacedAssignments"] = {};
    if (rules && placements.length > 0) {
      const decideStarted = performance.now();
      try {
        const result = decide(rules.compiled, {
          visitorId: canonicalId,
          now,
          traits,
          state,
          context,
          consent,
          placements,
          forced: preview?.preview.forced,
          explain: preview?.preview.explain ?? false,
        });
        for (const d of result.decisions) {
          if (d.action === "redirect" && d.experience !== null && d.html === null) {
            // The URL policy refused the rendered target (another host, a trick): the origin's page.
            failOpen.push("redirect-refused");
            log("warn", "redirect_refused", { placement: d.placement, experience: d.experience });
            continue;
          }
          if (d.action === "redirect" && d.html) {
            const target = safeRedirect(d.html, url);
            if (target) redirect ??= target;
            else failOpen.push("redirect-invalid");
            continue;
          }
          if (d.experience === null || d.html === null || !d.selector || d.action === "redirect") continue;
          changes.push({
            selector: d.selector,
            action: d.action,
            html: d.html,
            attribute: d.attribute ?? undefined,
          });
        }
        personalized = changes.length > 0 || redirect !== null;
        explanation = preview ? (result.explanation ?? result) : null;
        exposures = result.exposures;
        assignments = result.assignments;
        replacedAssignments = result.replacedAssignments;
      } catch (err) {
        // decide() is built never to throw; if it does, it is a bug, and the page is still served.
        log("error", "decide_threw", { error: String(err) });
        failOpen.push("decide");
        changes = [];
      }
      timings.decide = performance.now() - decideStarted;
    }

    const bodyEnd = beacon + (preview ? previewPanel(explanation) : "");
    const recordDecision =
      !bot && privacy.measure
        ? decisionRecorder(env, canonicalId, { exposures, assignments, replacedAssignments }, now, {
            consentMode: config.CONSENT_MODE,
            gpc,
          })
        : null;
    const record =
      !bot && (pageView !== undefined || recordDecision)
        ? async () => {
            if (pageView && !profiled)
              await stub.snapshot({ now, pageView, visitorId, consentMode: config.CONSENT_MODE });
            await recordDecision?.();
          }
        : null;

    const passThrough =
      changes.length === 0 && bodyEnd === "" && setCookies.length === 0 && redirect === null;
    return {
      passThrough,
      plan: { changes, bodyEnd },
      personalized: personalized || preview !== null,
      redirect,
      setCookies,
      rulesVersion: rules?.version ?? null,
      failOpen,
      timings,
      record,
    };
  })();
  return started(
    head,
    decided.catch((err: unknown) => {
      log("error", "personalize_failed", { error: String(err) });
      return { ...NOTHING, setCookies, rulesVersion: head.rulesVersion, failOpen: ["personalization"] };
    }),
  );
}
