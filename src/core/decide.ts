import { pickVariant } from "./bucketing.ts";
import { bestHour, preferredChannel } from "./channels.ts";
import type {
  CompiledContent,
  CompiledExperience,
  CompiledPlacement,
  DecisionRules,
} from "./compiled-rules.ts";
import type { Consent, RequestContext, Traits, VisitorState } from "./model.ts";
import { type EvalScope, intentOf, type Trace, topOf } from "./scope.ts";
import type { TemplateScope } from "./templates.ts";
import { redirectTarget } from "./url-policy.ts";
import { own } from "./visitor-state.ts";

/**
 * decide(): for each placement, the experience a visitor sees and why. Pure and deterministic (time
 * is an input), never throws on any profile or state shape, and builds explanations only when asked.
 */

export interface DecisionInput {
  readonly visitorId: string;
  readonly now: number;
  readonly traits: Traits;
  readonly state: VisitorState | null;
  readonly context: RequestContext;
  readonly consent: Consent;
  /** Placements to decide; default: every placement (web: those whose pages match context.path). */
  readonly placements?: readonly string[] | undefined;
  /** Preview: force an experience (and variant) per placement. */
  readonly forced?:
    | Readonly<Record<string, { readonly experience: string; readonly variant?: string | undefined }>>
    | undefined;
  readonly explain?: boolean | undefined;
}

/** Why a placement shows what it shows (a list, so the API's schema can enumerate it). */
export const REASONS = [
  "FORCED",
  "TARGET_MATCH",
  "EXPERIMENT",
  "HOLDOUT",
  "DEFAULT",
  "FALLTHROUGH",
  "EXCLUDED",
] as const;
export type Reason = (typeof REASONS)[number];

export interface Decision {
  readonly placement: string;
  readonly experience: string | null;
  readonly variant: string | null;
  readonly action: CompiledPlacement["action"];
  readonly selector: string | null;
  readonly attribute: string | null;
  /**
   * Rendered fragment (web), redirect target (redirect), or attribute value (set_attribute). Null: keep
   * the origin's (so is a redirect target the URL policy refuses: another host, another scheme).
   */
  readonly html: string | null;
  readonly json: unknown;
  readonly ttl: number;
  readonly reason: Reason;
  /** Index of the winning experience in the document's `experiences`, or null. */
  readonly ruleIndex: number | null;
}

/** Why a candidate did not win (a list, so the API's schema can enumerate it). */
export const LOSS_REASONS = [
  "channel",
  "audience",
  "capped",
  "suppressed",
  "held_out",
  "excluded",
  "lower_priority",
  "lower_score",
  "experiment_stopped",
] as const;
export type LossReason = (typeof LOSS_REASONS)[number];

export interface CandidateTrace {
  readonly experience: string;
  /** As in `Decision.ruleIndex`: the experience's index in the document's `experiences`. */
  readonly ruleIndex: number;
  readonly outcome: "won" | LossReason;
  readonly detail: string | null;
}

export interface DecisionResult {
  readonly decisions: readonly Decision[];
  readonly segments: readonly string[];
  readonly intent: { readonly top: string | null; readonly scores: Readonly<Record<string, number>> };
  /**
   * Experiment assignments made in this decision that the visitor did not have yet (to persist),
   * including those that replace a stored variant the experiment no longer has.
   */
  readonly assignments: Readonly<Record<string, string>>;
  /** Experiment → the stale stored variant an entry of `assignments` replaces (to store it anyway). */
  readonly replacedAssignments: Readonly<Record<string, string>>;
  /** What was shown, to record as exposures (frequency caps, measurement). */
  readonly exposures: ReadonlyArray<{
    readonly experience: string;
    readonly placement: string;
    readonly experiment: string | null;
    readonly variant: string | null;
    /** The experience has frequency caps: its exposure must be stored for them to count. */
    readonly capped: boolean;
  }>;
  readonly unknownPlacements: readonly string[];
  /** For outbound channels: the channel and hour this person engages with most. */
  readonly outbound: { readonly channel: string | null; readonly hour: number | null } | null;
  readonly explanation: Readonly<Record<string, readonly CandidateTrace[]>> | null;
}

const OUTBOUND = new Set(["email", "sms", "push"]);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The state comes from our own Durable Object, but the engine does not trust shapes it did not
 * build: any field of the wrong type is read as empty, so evaluation never throws.
 */
function normalizeState(s: VisitorState | null): VisitorState | null {
  if (!isObject(s)) return null;
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const rec = <T>(v: unknown) => (isObject(v) ? (v as Record<string, T>) : {});
  const validEvent = (e: unknown): e is VisitorState["events"][number] =>
    isObject(e) && typeof e.type === "string" && typeof e.ts === "number" && isObject(e.props);
  // The common case (our own object's state) allocates nothing: the array is checked, then kept.
  const events: VisitorState["events"] = !Array.isArray(s.events)
    ? []
    : s.events.every(validEvent)
      ? s.events
      : s.events.filter(validEvent);
  return {
    visitorId: typeof s.visitorId === "string" ? s.visitorId : "",
    firstSeen: num(s.firstSeen),
    lastSeen: num(s.lastSeen),
    sessionCount: num(s.sessionCount) ?? 0,
    events,
    counts: rec(s.counts),
    lastByType: Object.fromEntries(
      Object.entries(rec<unknown>(s.lastByType)).filter(
        (e): e is [string, number] => typeof e[1] === "number",
      ),
    ),
    intent: Object.fromEntries(
      Object.entries(rec<unknown>(s.intent)).filter(
        (e): e is [string, { value: number; ts: number }] =>
          isObject(e[1]) && typeof e[1].value === "number" && typeof e[1].ts === "number",
      ),
    ),
    engagement: Object.fromEntries(
      Object.entries(rec<unknown>(s.engagement)).filter(
        (e): e is [string, VisitorState["engagement"][string]] =>
          isObject(e[1]) &&
          typeof e[1].sends === "number" &&
          typeof e[1].opens === "number" &&
          typeof e[1].clicks === "number" &&
          (e[1].hours === undefined || Array.isArray(e[1].hours)),
      ),
    ),
    engagementHours: Array.isArray(s.engagementHours)
      ? s.engagementHours.map((h) => (typeof h === "number" ? h : 0))
      : [],
    exposures: Object.fromEntries(
      Object.entries(rec<unknown>(s.exposures)).filter((e): e is [string, number[]] => Array.isArray(e[1])),
    ),
    assignments: Object.fromEntries(
      Object.entries(rec<unknown>(s.assignments)).filter(
        (e): e is [string, string] => typeof e[1] === "string",
      ),
    ),
    conversions: Object.fromEntries(
      Object.entries(rec<unknown>(s.conversions)).filter(
        (e): e is [string, number] => typeof e[1] === "number",
      ),
    ),
  };
}

/** Where this decision's redirects may go: the request's own host and the rules' listed hosts. */
interface RedirectScope {
  readonly siteHost: () => string | null;
  readonly hosts: readonly string[];
}

function render(
  content: CompiledContent | null,
  placement: CompiledPlacement,
  scope: TemplateScope,
  redirects: RedirectScope,
) {
  if (!content) return { html: null, json: null };
  const value =
    placement.action === "redirect"
      ? content.redirect
      : placement.action === "set_attribute"
        ? content.attribute
        : content.html;
  let html = value ? value(scope) : null;
  // A target rendered from request or profile data (`{{ context.query.next }}`) goes only where the
  // rules allow (url-policy.ts); a refused one renders nothing, so the page is served as it came.
  if (html && placement.action === "redirect")
    html = redirectTarget(html, redirects.siteHost(), redirects.hosts);
  return { html, json: content.json ? content.json(scope) : null };
}

function hostOf(url: string | null | undefined): string | null {
  if (typeof url !== "string") return null;
  try {
    return new URL(url).host;
  } catch {
    return null;
  }
}

function countSince(times: readonly number[] | undefined, since: number): number {
  if (!times) return 0;
  let n = 0;
  for (const t of times) if (t > since) n++;
  return n;
}

const EMPTY_GEO: RequestContext["geo"] = { country: null, region: null, city: null, timezone: null };

/**
 * The request context is built by the edge, but the engine promises never to throw, whatever it is
 * handed: a context of the wrong shape is read with safe defaults. Our own contexts pass untouched.
 */
function normalizeContext(c: RequestContext): RequestContext {
  if (
    isObject(c) &&
    typeof c.channel === "string" &&
    typeof c.path === "string" &&
    isObject(c.geo) &&
    isObject(c.query) &&
    (c.geo.timezone === null || typeof c.geo.timezone === "string")
  ) {
    return c;
  }
  const v = (isObject(c) ? c : {}) as Record<string, unknown>;
  const geo = isObject(v.geo) ? v.geo : {};
  const str = (x: unknown) => (typeof x === "string" ? x : null);
  return {
    channel: str(v.channel) ?? "web",
    url: str(v.url),
    path: str(v.path) ?? "/",
    query: isObject(v.query) ? (v.query as Record<string, string>) : {},
    referrer: str(v.referrer),
    geo: isObject(v.geo)
      ? {
          country: str(geo.country),
          region: str(geo.region),
          city: str(geo.city),
          timezone: str(geo.timezone),
        }
      : EMPTY_GEO,
    device: (str(v.device) ?? "unknown") as RequestContext["device"],
    locale: str(v.locale),
    userAgent: str(v.userAgent),
    custom: isObject(v.custom) ? v.custom : {},
  };
}

const NO_CONSENT: Consent = {};
const NO_HOSTS: readonly string[] = [];
const NO_TRAITS: Traits = {};

/**
 * Decides every requested placement for one visitor.
 *
 * @example
 * const result = decide(compiled, { visitorId, now: Date.now(), traits, state, context, consent });
 * for (const d of result.decisions) if (d.html !== null) rewrite(d.selector, d.action, d.html);
 * // persist result.assignments and result.exposures in the background
 */
export function decide(rules: DecisionRules, input: DecisionInput): DecisionResult {
  const consent = isObject(input.consent) ? (input.consent as Consent) : NO_CONSENT;
  const now = typeof input.now === "number" && Number.isFinite(input.now) ? input.now : 0;
  const visitorId = typeof input.visitorId === "string" ? input.visitorId : "";
  const context = normalizeContext(input.context);
  const personalize = consent.personalization !== false;
  // Without consent for personalization, only the request context counts: no traits, no history.
  const state = personalize ? normalizeState(input.state) : null;
  const traits = personalize && isObject(input.traits) ? input.traits : NO_TRAITS;
  const assignments: Record<string, string> = Object.assign(Object.create(null), state?.assignments);
  const newAssignments: Record<string, string> = {};
  const replacedAssignments: Record<string, string> = {};
  const scope: EvalScope = {
    now,
    traits,
    context,
    state,
    consent,
    assignments,
    halfLives: rules.halfLives,
  };
  // The program-wide control group: bucketed once, sticky like any assignment; its visitors get
  // every placement's default, the baseline the whole program's lift is measured against.
  let globallyHeldOut = false;
  const global = rules.globalHoldout;
  if (global) {
    let assigned = own(assignments, global.id);
    if (assigned !== "holdout" && assigned !== "personalized") {
      const pick = pickVariant(global.seed, visitorId, global.variants, global.holdout);
      assigned = pick.heldOut ? "holdout" : "personalized";
      assignments[global.id] = assigned;
      if (personalize) newAssignments[global.id] = assigned;
    }
    globallyHeldOut = assigned === "holdout";
  }
  const scores = intentOf(scope);
  const top = topOf(scope);
  let siteHost: string | null | undefined;
  const redirects: RedirectScope = {
    // Parsed only when a redirect renders: most decisions have none.
    siteHost: () => {
      if (siteHost === undefined) siteHost = hostOf(context.url);
      return siteHost;
    },
    hosts: rules.settings?.redirectHosts ?? NO_HOSTS,
  };
  const templateScope: TemplateScope = {
    traits,
    context,
    intent: { top: top.dimension, scores },
    visitor: { id: visitorId, sessionCount: state?.sessionCount ?? 0 },
  };

  const requested = Array.isArray(input.placements)
    ? input.placements
    : context.channel === "web"
      ? rules.placementsForPath(context.path)
      : rules.placementOrder;
  const unknownPlacements: string[] = [];
  const decisions: Decision[] = [];
  const exposures: Array<DecisionResult["exposures"][number]> = [];
  const explanation: Record<string, CandidateTrace[]> | null = input.explain ? {} : null;
  const usedGroups = new Set<string>();

  for (const placementId of requested) {
    // Own keys only: a requested name such as "constructor" is unknown, not Object's constructor.
    const placement =
      typeof placementId === "string" && Object.hasOwn(rules.placements, placementId)
        ? rules.placements[placementId]
        : undefined;
    if (!placement) {
      unknownPlacements.push(placementId);
      continue;
    }
    const traces: CandidateTrace[] | null = explanation ? [] : null;
    const lose = (x: CompiledExperience, outcome: LossReason, detail: string | null = null) => {
      traces?.push({ experience: x.id, ruleIndex: x.index, outcome, detail });
    };
    const base = {
      placement: placementId,
      action: placement.action,
      selector: placement.selector,
      attribute: placement.attribute,
      ttl: placement.ttl,
    };
    let decision: Decision | null = null;

    const forced = isObject(input.forced) ? input.forced[placementId] : undefined;
    if (isObject(forced)) {
      const x = placement.experiences.find((e) => e.id === forced.experience);
      if (x) {
        const content =
          (typeof forced.variant === "string" && Object.hasOwn(x.variants, forced.variant)
            ? x.variants[forced.variant]
            : null) ?? x.content;
        decision = {
          ...base,
          experience: x.id,
          variant: typeof forced.variant === "string" ? forced.variant : null,
          ...render(content, placement, templateScope, redirects),
          reason: "FORCED",
          ruleIndex: x.index,
        };
        traces?.push({ experience: x.id, ruleIndex: x.index, outcome: "won", detail: "forced by preview" });
      }
    }

    const excluded = placement.group !== null && usedGroups.has(placement.group);
    let heldOut = false;
    /** Why the candidates after the one that ended the search were never evaluated. */
    let stoppedBy: string | null = null;
    const eligible: Array<{
      x: CompiledExperience;
      variant: string | null;
      content: CompiledContent | null;
    }> = [];
    if (!decision && globallyHeldOut) {
      for (const x of placement.experiences) lose(x, "held_out", "in the global holdout: no personalization");
      heldOut = placement.experiences.length > 0;
    } else if (!decision) {
      for (const x of placement.experiences) {
        if (excluded) {
          lose(x, "excluded", `group ${placement.group} already shows an experience on this page`);
          continue;
        }
        if (x.channels && !x.channels.has(context.channel)) {
          lose(x, "channel", `not for channel ${context.channel}`);
          continue;
        }
        if (x.audience) {
          let failed: string | null = null;
          const trace: Trace | undefined = traces
            ? (path, result, why) => {
                if (!result && failed === null) failed = `${path}: ${why}`;
              }
            : undefined;
          if (!x.audience(scope, trace)) {
            lose(x, "audience", failed);
            continue;
          }
        }
        const capped = x.caps.find(
          (c) => countSince(state ? own(state.exposures, x.id) : undefined, now - c.perMs) >= c.max,
        );
        if (capped) {
          lose(x, "capped", `shown ${capped.max} times within the cap period`);
          continue;
        }
        const suppressed = x.suppress.find((s) => {
          const at = state ? (own(state.conversions, s.event) ?? own(state.lastByType, s.event)) : undefined;
          return at !== undefined && now - at <= s.withinMs;
        });
        if (suppressed) {
          lose(x, "suppressed", `after ${suppressed.event}`);
          continue;
        }
        let variant: string | null = null;
        let content = x.content;
        const exp = x.experiment;
        if (exp) {
          if (exp.status !== "running") {
            variant = exp.variants[0]?.id ?? null;
            content = (variant && x.variants[variant]) || x.content;
          } else {
            // A recorded assignment is sticky, even if the weights have changed since (a variant
            // now weighted 0 included). One naming a variant the experiment no longer has (removed
            // or renamed) has nothing to show: the visitor is bucketed again and the new one kept.
            let assigned = own(assignments, exp.id);
            const stale =
              assigned !== undefined &&
              assigned !== "holdout" &&
              !exp.variants.some((v) => v.id === assigned);
            if (assigned === undefined || stale) {
              const pick = pickVariant(exp.seed, visitorId, exp.variants, exp.holdout);
              if (stale && personalize) replacedAssignments[exp.id] = assigned!;
              assigned = pick.heldOut ? "holdout" : (pick.variant ?? "holdout");
              assignments[exp.id] = assigned;
              // Without consent the bucket is still deterministic (a pure hash of seed and id, so the
              // visitor sees a stable variant), but nothing is handed back to be stored.
              if (personalize) newAssignments[exp.id] = assigned;
            }
            if (assigned === "holdout") {
              lose(x, "held_out", `held out of ${exp.id}`);
              heldOut = true;
              stoppedBy = `not evaluated: held out of ${exp.id} at ${x.id}, the placement keeps its default`;
              break;
            }
            variant = assigned;
            content = (Object.hasOwn(x.variants, assigned) ? x.variants[assigned] : null) ?? x.content;
          }
        }
        eligible.push({ x, variant, content });
        if (placement.pick === "priority") break;
      }
    }

    if (!decision && eligible.length > 0) {
      let winner = eligible[0]!;
      if (placement.pick === "score") {
        const scoreOf = (e: (typeof eligible)[number]) => (e.x.scoreBy ? (scores[e.x.scoreBy] ?? 0) : 0);
        for (const e of eligible) if (scoreOf(e) > scoreOf(winner)) winner = e;
        for (const e of eligible)
          if (e !== winner) lose(e.x, "lower_score", `score ${scoreOf(e).toFixed(2)}`);
      }
      const rendered = render(winner.content, placement, templateScope, redirects);
      decision = {
        ...base,
        experience: winner.x.id,
        variant: winner.variant,
        ...rendered,
        reason: winner.x.experiment && winner.variant ? "EXPERIMENT" : "TARGET_MATCH",
        ruleIndex: winner.x.index,
      };
      traces?.push({ experience: winner.x.id, ruleIndex: winner.x.index, outcome: "won", detail: null });
      stoppedBy ??= `after ${winner.x.id}`;
      exposures.push({
        experience: winner.x.id,
        placement: placementId,
        experiment: winner.x.experiment?.id ?? null,
        variant: winner.variant,
        capped: winner.x.caps.length > 0,
      });
      if (placement.group) usedGroups.add(placement.group);
    }

    if (!decision) {
      const rendered = render(placement.fallback, placement, templateScope, redirects);
      decision = {
        ...base,
        experience: null,
        variant: null,
        ...rendered,
        reason: heldOut
          ? "HOLDOUT"
          : excluded
            ? "EXCLUDED"
            : placement.experiences.length
              ? "DEFAULT"
              : "FALLTHROUGH",
        ruleIndex: null,
      };
    } else if (decision.reason === "FORCED" && placement.group) usedGroups.add(placement.group);

    decisions.push(decision);
    if (explanation && traces) {
      // Every candidate gets an entry, those the search never reached included.
      if (stoppedBy !== null) {
        const traced = new Set(traces.map((t) => t.experience));
        for (const x of placement.experiences) if (!traced.has(x.id)) lose(x, "lower_priority", stoppedBy);
      }
      explanation[placementId] = traces;
    }
  }

  const segments: string[] = [];
  for (const [id, test] of Object.entries(rules.segments)) if (test(scope)) segments.push(id);

  // Which channel and when: the channel with the best engagement rate, and the hour this person
  // engages on that channel (all channels' hours until that one has enough of its own).
  let outbound: DecisionResult["outbound"] = null;
  if (OUTBOUND.has(context.channel)) {
    const channel = state ? preferredChannel(state.engagement).channel : null;
    const hours = channel && state ? own(state.engagement, channel)?.hours : undefined;
    outbound = {
      channel,
      hour: state ? ((hours ? bestHour(hours) : null) ?? bestHour(state.engagementHours)) : null,
    };
  }

  return {
    decisions,
    segments,
    intent: { top: top.dimension, scores },
    assignments: newAssignments,
    replacedAssignments,
    exposures,
    unknownPlacements,
    outbound,
    explanation,
  };
}
