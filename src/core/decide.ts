import { pickVariant } from "./bucketing.ts";
import { bestHour, localHours, preferredChannel } from "./channels.ts";
import type {
  CompiledContent,
  CompiledExperience,
  CompiledPlacement,
  DecisionRules,
} from "./compiled-rules.ts";
import { isStoredEvent } from "./event-counts.ts";
import { LayerDraws, layerLossDetail, layerWinDetail } from "./layers.ts";
import type { Consent, RequestContext, Traits, VisitorState } from "./model.ts";
import { isObject, normalizeContext, normalizeState } from "./normalize.ts";
import { type RankedItem, rankItems } from "./ranking.ts";
import { type EvalScope, intentOf, lastCategoryOf, type Test, type Trace, topOf, topTagOf } from "./scope.ts";
import type { TemplateScope } from "./templates.ts";
import { isTimeZone, utcOffsetMinutes } from "./time-zone.ts";
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
  /**
   * List the visitor's named segments in the result (default true). The page never reads them, so
   * it passes false: a segment is then evaluated only when a candidate's audience refers to it.
   */
  readonly segments?: boolean | undefined;
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
  /** The content's ranked list for this visitor, best first (null: the content ranks none). */
  readonly items: readonly RankedItem[] | null;
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
  "not_started",
  "ended",
  "layer",
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
  readonly outbound: OutboundTiming | null;
  readonly explanation: Readonly<Record<string, readonly CandidateTrace[]>> | null;
}

/**
 * Where an outbound answer's time zone came from, in the order they are tried: the zone the request
 * states, the person's `timezone` trait, the zone named by their latest event that names one
 * (`props.tz` or `props.timezone`), else UTC. A name that is not an IANA zone is skipped.
 */
export const TIMEZONE_SOURCES = ["request", "trait", "last_seen", "utc"] as const;
export type TimezoneSource = (typeof TIMEZONE_SOURCES)[number];

export interface OutboundTiming {
  readonly channel: string | null;
  /** 0–23 in `timezone`; null until there is enough engagement to tell. */
  readonly hour: number | null;
  /** The IANA zone `hour` is in ("UTC" when none is known). */
  readonly timezone: string;
  readonly timezoneSource: TimezoneSource;
}

const OUTBOUND = new Set(["email", "sms", "push"]);
const NO_CONSENT: Consent = {};
const NO_HOSTS: readonly string[] = [];
const NO_TRAITS: Traits = {};

type Exposure = DecisionResult["exposures"][number];

/** One decide() call: its inputs, read safely, and what it gathers as placements are decided. */
interface DecisionRun {
  readonly rules: DecisionRules;
  readonly visitorId: string;
  readonly now: number;
  readonly context: RequestContext;
  readonly state: VisitorState | null;
  /** Consent allows personalization: stored traits and history count, assignments are kept. */
  readonly personalize: boolean;
  readonly forced: DecisionInput["forced"];
  /** What conditions read (caches filled as rules read them). */
  readonly scope: EvalScope;
  readonly templateScope: TemplateScope;
  /** The request's own host, where a redirect may go: parsed only when one renders (most decisions have none). */
  siteHost: string | null | undefined;
  readonly scores: Readonly<Record<string, number>>;
  readonly top: { readonly dimension: string | null; readonly value: number };
  /** Every assignment, stored and new: what this decision buckets into. */
  readonly assignments: Record<string, string>;
  readonly newAssignments: Record<string, string>;
  readonly replacedAssignments: Record<string, string>;
  readonly exposures: Exposure[];
  /** Placement groups that already show an experience on this page (made at the first). */
  usedGroups: Set<string> | null;
  /** Which experiment of each layer the visitor is in (drawn when a layered candidate needs it). */
  readonly layers: LayerDraws;
  /** In the program-wide control group: every placement shows its default. */
  globallyHeldOut: boolean;
}

/** A candidate that passed every check, with the variant and content it would show. */
interface Eligible {
  readonly experience: CompiledExperience;
  readonly variant: string | null;
  readonly content: CompiledContent | null;
}

/** What the search through a placement's candidates found. */
interface CandidateSearch {
  readonly eligible: readonly Eligible[];
  /** An experiment held the visitor out (or the global holdout did): the placement keeps its default. */
  readonly heldOut: boolean;
  /** Why the candidates after the one that ended the search were never evaluated (null: all were). */
  readonly stoppedBy: string | null;
}

/**
 * Decides every requested placement for one visitor.
 *
 * @example
 * const result = decide(compiled, { visitorId, now: Date.now(), traits, state, context, consent });
 * for (const d of result.decisions) if (d.html !== null) rewrite(d.selector, d.action, d.html);
 * // persist result.assignments and result.exposures in the background
 */
export function decide(rules: DecisionRules, input: DecisionInput): DecisionResult {
  const run = startRun(rules, input);
  run.globallyHeldOut = inGlobalHoldout(run);
  const unknownPlacements: string[] = [];
  const decisions: Decision[] = [];
  const explanation: Record<string, CandidateTrace[]> | null = input.explain ? {} : null;
  for (const placementId of requestedPlacements(rules, input, run.context)) {
    const placement = placementNamed(rules, placementId);
    if (!placement) {
      unknownPlacements.push(placementId);
      continue;
    }
    const traces: CandidateTrace[] | null = explanation ? [] : null;
    decisions.push(decidePlacement(run, placementId, placement, traces));
    if (explanation && traces) explanation[placementId] = traces;
  }
  return {
    decisions,
    segments: input.segments === false ? NO_SEGMENTS : segmentsOf(rules, run.scope),
    intent: { top: run.top.dimension, scores: run.scores },
    assignments: run.newAssignments,
    replacedAssignments: run.replacedAssignments,
    exposures: run.exposures,
    unknownPlacements,
    outbound: outboundTiming(run.context, run.state, run.scope.traits, run.now),
    explanation,
  };
}

function startRun(rules: DecisionRules, input: DecisionInput): DecisionRun {
  const consent = isObject(input.consent) ? (input.consent as Consent) : NO_CONSENT;
  const now = typeof input.now === "number" && Number.isFinite(input.now) ? input.now : 0;
  const visitorId = typeof input.visitorId === "string" ? input.visitorId : "";
  const context = normalizeContext(input.context);
  const personalize = consent.personalization !== false;
  // Without consent for personalization, only the request context counts: no traits, no history.
  const state = personalize ? normalizeState(input.state) : null;
  const traits = personalize && isObject(input.traits) ? input.traits : NO_TRAITS;
  const assignments: Record<string, string> = Object.assign(Object.create(null), state?.assignments);
  const scope: EvalScope = {
    now,
    traits,
    context,
    state,
    consent,
    assignments,
    halfLives: rules.halfLives,
    eventSides: rules.eventSides,
    affinityHalfLifeMs: rules.affinityHalfLifeMs,
    // Every cache declared up front: one shape for every decision's scope, so the conditions that
    // read it stay monomorphic, whichever views a visitor's rules happen to fill first.
    intentCache: undefined,
    topCache: undefined,
    tagCache: undefined,
    topTagCache: undefined,
    lastCategoryCache: undefined,
    clockCache: undefined,
    segmentCache: undefined,
    segmentTraces: undefined,
    visitorCache: undefined,
    activityCache: undefined,
    countCache: undefined,
  };
  const scores = intentOf(scope);
  const top = topOf(scope);
  const visitor: Record<string, unknown> = { id: visitorId, sessionCount: state?.sessionCount ?? 0 };
  const templateScope: Record<string, unknown> = {
    traits,
    context,
    intent: { top: top.dimension, scores },
    visitor,
  };
  // Read from the events only for rules whose templates name them (few do).
  if (rules.templatesReadHistory) {
    templateScope.affinity = { top: topTagOf(scope).tag };
    visitor.lastCategory = lastCategoryOf(scope);
  }
  return {
    rules,
    visitorId,
    now,
    context,
    state,
    personalize,
    forced: input.forced,
    scope,
    templateScope,
    siteHost: undefined,
    scores,
    top,
    assignments,
    newAssignments: {},
    replacedAssignments: {},
    exposures: [],
    usedGroups: null,
    layers: new LayerDraws(visitorId),
    globallyHeldOut: false,
  };
}

function hostOf(url: string | null | undefined): string | null {
  if (typeof url !== "string") return null;
  try {
    return new URL(url).host;
  } catch {
    return null;
  }
}

/** Records an assignment made now; without consent it is used but never handed back to be stored. */
function assign(run: DecisionRun, experimentId: string, arm: string): void {
  run.assignments[experimentId] = arm;
  if (run.personalize) run.newAssignments[experimentId] = arm;
}

/**
 * The program-wide control group: bucketed once, sticky like any assignment; its visitors get
 * every placement's default, the baseline the whole program's lift is measured against.
 */
function inGlobalHoldout(run: DecisionRun): boolean {
  const global = run.rules.globalHoldout;
  if (!global) return false;
  let assigned = own(run.assignments, global.id);
  if (assigned !== "holdout" && assigned !== "personalized") {
    const pick = pickVariant(global.seed, run.visitorId, global.variants, global.holdout);
    assigned = pick.heldOut ? "holdout" : "personalized";
    assign(run, global.id, assigned);
  }
  return assigned === "holdout";
}

/** The placements asked for; by default every placement (web: those whose pages match the path). */
function requestedPlacements(
  rules: DecisionRules,
  input: DecisionInput,
  context: RequestContext,
): readonly string[] {
  if (Array.isArray(input.placements)) return input.placements;
  return context.channel === "web" ? rules.placementsForPath(context.path) : rules.placementOrder;
}

/** Own keys only: a requested name such as "constructor" is unknown, not Object's constructor. */
function placementNamed(rules: DecisionRules, placementId: string): CompiledPlacement | undefined {
  return typeof placementId === "string" && Object.hasOwn(rules.placements, placementId)
    ? rules.placements[placementId]
    : undefined;
}

function decidePlacement(
  run: DecisionRun,
  placementId: string,
  placement: CompiledPlacement,
  traces: CandidateTrace[] | null,
): Decision {
  const forced = forcedDecision(run, placementId, placement, traces);
  if (forced) {
    if (placement.group) useGroup(run, placement.group);
    return forced;
  }
  const excluded = placement.group !== null && run.usedGroups?.has(placement.group) === true;
  const search = run.globallyHeldOut
    ? globallyHeldOutSearch(placement, traces)
    : searchCandidates(run, placement, excluded, traces);
  if (isEligible(search)) {
    // The first eligible candidate of a placement that picks by priority: the usual winner.
    const decision = winningDecision(run, placementId, placement, search, traces);
    if (traces) traceUnreached(traces, placement, `after ${search.experience.id}`);
    return decision;
  }
  let stoppedBy = search.stoppedBy;
  let decision: Decision;
  if (search.eligible.length > 0) {
    const winner = pickWinner(run, placement, search.eligible, traces);
    decision = winningDecision(run, placementId, placement, winner, traces);
    if (traces) stoppedBy ??= `after ${winner.experience.id}`;
  } else decision = defaultDecision(run, placementId, placement, search.heldOut, excluded);
  // Every candidate gets an entry in an explanation, those the search never reached included.
  if (traces && stoppedBy !== null) traceUnreached(traces, placement, stoppedBy);
  return decision;
}

function useGroup(run: DecisionRun, group: string): void {
  run.usedGroups ??= new Set();
  run.usedGroups.add(group);
}

function recordLoss(
  traces: CandidateTrace[] | null,
  experience: CompiledExperience,
  outcome: LossReason,
  detail: string | null = null,
): void {
  traces?.push({ experience: experience.id, ruleIndex: experience.index, outcome, detail });
}

/** Preview: the experience (and variant) forced for this placement, when the placement has it. */
function forcedDecision(
  run: DecisionRun,
  placementId: string,
  placement: CompiledPlacement,
  traces: CandidateTrace[] | null,
): Decision | null {
  const forced = isObject(run.forced) ? run.forced[placementId] : undefined;
  if (!isObject(forced)) return null;
  const experience = placement.experiences.find((candidate) => candidate.id === forced.experience);
  if (!experience) return null;
  const content =
    (typeof forced.variant === "string" && Object.hasOwn(experience.variants, forced.variant)
      ? experience.variants[forced.variant]
      : null) ?? experience.content;
  traces?.push({
    experience: experience.id,
    ruleIndex: experience.index,
    outcome: "won",
    detail: "forced by preview",
  });
  const variant = typeof forced.variant === "string" ? forced.variant : null;
  return decisionOf(run, placementId, placement, content, experience.id, variant, "FORCED", experience.index);
}

function globallyHeldOutSearch(
  placement: CompiledPlacement,
  traces: CandidateTrace[] | null,
): CandidateSearch {
  for (const experience of placement.experiences)
    recordLoss(traces, experience, "held_out", "in the global holdout: no personalization");
  return { eligible: [], heldOut: placement.experiences.length > 0, stoppedBy: null };
}

/**
 * The placement's candidates in priority order, each checked in turn: the first eligible one ends
 * the search under pick=priority (and is what it returns); every eligible one is kept under
 * pick=score; an experiment holding the visitor out ends it with no winner.
 */
function searchCandidates(
  run: DecisionRun,
  placement: CompiledPlacement,
  excluded: boolean,
  traces: CandidateTrace[] | null,
): Eligible | CandidateSearch {
  // Made at the first eligible candidate: most placements that show their default have none.
  let eligible: Eligible[] | null = null;
  for (const experience of placement.experiences) {
    if (excluded) {
      recordLoss(
        traces,
        experience,
        "excluded",
        `group ${placement.group} already shows an experience on this page`,
      );
      continue;
    }
    if (!passesChecks(run, experience, traces) || !admittedByLayer(run, experience, traces)) continue;
    const candidate = experimentArm(run, experience);
    if (!candidate) {
      const experimentId = experience.experiment!.id;
      recordLoss(traces, experience, "held_out", `held out of ${experimentId}`);
      return {
        eligible: eligible ?? NO_ELIGIBLE,
        heldOut: true,
        stoppedBy: `not evaluated: held out of ${experimentId} at ${experience.id}, the placement keeps its default`,
      };
    }
    // Under pick=priority the first is the winner, handed back as it is (no list, no search made).
    if (placement.pick === "priority") return candidate;
    eligible ??= [];
    eligible.push(candidate);
  }
  return eligible === null ? NOTHING_ELIGIBLE : { eligible, heldOut: false, stoppedBy: null };
}

const isEligible = (found: Eligible | CandidateSearch): found is Eligible => "experience" in found;

const NO_ELIGIBLE: readonly Eligible[] = Object.freeze([]);
const NOTHING_ELIGIBLE: CandidateSearch = Object.freeze({
  eligible: NO_ELIGIBLE,
  heldOut: false,
  stoppedBy: null,
});

/** Dates, channel, audience, frequency caps and suppression; a failed check is recorded as the loss. */
function passesChecks(
  run: DecisionRun,
  experience: CompiledExperience,
  traces: CandidateTrace[] | null,
): boolean {
  const { context, state, now } = run;
  const schedule = experience.schedule;
  if (schedule !== null && (now < schedule.startMs || now >= schedule.endMs)) {
    const started = now >= schedule.startMs;
    recordLoss(
      traces,
      experience,
      started ? "ended" : "not_started",
      started ? schedule.ended : schedule.notStarted,
    );
    return false;
  }
  if (experience.channels && !experience.channels.has(context.channel)) {
    recordLoss(traces, experience, "channel", `not for channel ${context.channel}`);
    return false;
  }
  if (experience.audience) {
    if (traces) {
      if (!explainedAudience(run, experience, traces)) return false;
    } else if (!experience.audience(run.scope)) return false;
  }
  // Plain loops: this runs for every candidate reached, and most have no caps and no suppression.
  if (experience.caps.length > 0) {
    const shown = state ? own(state.exposures, experience.id) : undefined;
    for (const cap of experience.caps) {
      if (countSince(shown, now - cap.perMs) >= cap.max) {
        recordLoss(traces, experience, "capped", `shown ${cap.max} times within the cap period`);
        return false;
      }
    }
  }
  for (const rule of experience.suppress) {
    const at = state ? (own(state.conversions, rule.event) ?? own(state.lastByType, rule.event)) : undefined;
    if (at !== undefined && now - at <= rule.withinMs) {
      recordLoss(traces, experience, "suppressed", `after ${rule.event}`);
      return false;
    }
  }
  return true;
}

/**
 * The audience, told to record the first condition that failed as the loss's detail. One trace
 * function for every candidate (a closure per candidate, or even per decision, cost the explained
 * decision its garbage and its tail: the per-decision one had the young generation promote megabytes).
 */
function explainedAudience(
  run: DecisionRun,
  experience: CompiledExperience,
  traces: CandidateTrace[],
): boolean {
  // Set just before the audience runs and read just after: decide() is synchronous, so no other
  // audience can tell the trace anything in between.
  firstFailure.path = null;
  if (experience.audience?.(run.scope, tellFirstFailure) !== false) return true;
  traces.push(audienceLoss(run.rules, experience, firstFailure.path, firstFailure.why));
  return false;
}

/** The first condition the audience being explained failed on: its path and why (path null: none yet). */
const firstFailure: { path: string | null; why: string } = { path: null, why: "" };
const tellFirstFailure: Trace = (path, result, why) => {
  if (!result && firstFailure.path === null) {
    firstFailure.path = path;
    firstFailure.why = why;
  }
};

/**
 * The trace of a candidate whose audience failed on `path` for `why`. The visitors an experience
 * turns away fail on one of a few of its conditions, for reasons worded by the rules, so each
 * experience keeps the last few such traces it made (frozen, shared) and hands one out again when
 * the failure is the same: at 2,000 rules an explained page lists some 800 audience losses, and a
 * new object and a new text for each was a good part of its garbage.
 */
function audienceLoss(
  rules: DecisionRules,
  experience: CompiledExperience,
  path: string | null,
  why: string,
): CandidateTrace {
  let byExperience = audienceLosses.get(rules);
  if (!byExperience) {
    byExperience = [];
    audienceLosses.set(rules, byExperience);
  }
  let known = byExperience[experience.index];
  if (known === undefined) {
    known = [];
    byExperience[experience.index] = known;
  }
  for (let i = 0; i < known.length; i++) {
    const loss = known[i]!;
    if (loss.path === path && loss.why === why) return loss.trace;
  }
  const trace: CandidateTrace = Object.freeze({
    experience: experience.id,
    ruleIndex: experience.index,
    outcome: "audience",
    detail: path === null ? null : `${path}: ${why}`,
  });
  // The newest first; at most a few per experience, however many ways its audience can fail.
  known.unshift({ path, why, trace });
  if (known.length > AUDIENCE_LOSSES_KEPT) known.pop();
  return trace;
}

const AUDIENCE_LOSSES_KEPT = 4;

interface AudienceLoss {
  readonly path: string | null;
  readonly why: string;
  readonly trace: CandidateTrace;
}

/** Per rules version, by experience index: the last audience losses each experience traced. */
const audienceLosses = new WeakMap<DecisionRules, (AudienceLoss[] | undefined)[]>();

/**
 * A candidate whose experiment shares a layer is one only for the visitors the layer gives to that
 * experiment. The others are not in the experiment at all (unlike its holdout, who are its control):
 * like a visitor outside its audience, they go on to the placement's next candidate or its default.
 */
function admittedByLayer(
  run: DecisionRun,
  experience: CompiledExperience,
  traces: CandidateTrace[] | null,
): boolean {
  const layer = experience.experiment?.layer;
  if (!layer || run.layers.admits(experience.experiment!)) return true;
  if (traces) recordLoss(traces, experience, "layer", layerLossDetail(layer, run.layers.experimentIn(layer)));
  return false;
}

function countSince(times: readonly number[] | undefined, since: number): number {
  if (!times) return 0;
  let n = 0;
  for (const t of times) if (t > since) n++;
  return n;
}

/**
 * The variant and content an eligible experience shows, bucketing the visitor into its experiment
 * when needed; null when the visitor is held out of that experiment.
 */
function experimentArm(run: DecisionRun, experience: CompiledExperience): Eligible | null {
  const experiment = experience.experiment;
  if (!experiment) return { experience, variant: null, content: experience.content };
  if (experiment.status !== "running") {
    // A paused or stopped experiment shows its first variant to everyone.
    const variant = experiment.variants[0]?.id ?? null;
    return { experience, variant, content: (variant && experience.variants[variant]) || experience.content };
  }
  // A recorded assignment is sticky, even if the weights have changed since (a variant now
  // weighted 0 included). One naming a variant the experiment no longer has (removed or renamed)
  // has nothing to show: the visitor is bucketed again and the new one kept.
  let assigned = own(run.assignments, experiment.id);
  const stale =
    assigned !== undefined &&
    assigned !== "holdout" &&
    !experiment.variants.some((declared) => declared.id === assigned);
  if (assigned === undefined || stale) {
    const pick = pickVariant(experiment.seed, run.visitorId, experiment.variants, experiment.holdout);
    if (stale && run.personalize) run.replacedAssignments[experiment.id] = assigned!;
    assigned = pick.heldOut ? "holdout" : (pick.variant ?? "holdout");
    // Without consent the bucket is still deterministic (a pure hash of seed and id, so the
    // visitor sees a stable variant), but nothing is handed back to be stored.
    assign(run, experiment.id, assigned);
  }
  if (assigned === "holdout") return null;
  const content =
    (Object.hasOwn(experience.variants, assigned) ? experience.variants[assigned] : null) ??
    experience.content;
  return { experience, variant: assigned, content };
}

/** The first eligible candidate, or under pick=score the one whose intent dimension is strongest. */
function pickWinner(
  run: DecisionRun,
  placement: CompiledPlacement,
  eligible: readonly Eligible[],
  traces: CandidateTrace[] | null,
): Eligible {
  let winner = eligible[0]!;
  if (placement.pick !== "score") return winner;
  const scoreOf = (candidate: Eligible) =>
    candidate.experience.scoreBy ? (run.scores[candidate.experience.scoreBy] ?? 0) : 0;
  for (const candidate of eligible) if (scoreOf(candidate) > scoreOf(winner)) winner = candidate;
  for (const candidate of eligible)
    if (candidate !== winner)
      recordLoss(traces, candidate.experience, "lower_score", `score ${scoreOf(candidate).toFixed(2)}`);
  return winner;
}

function winningDecision(
  run: DecisionRun,
  placementId: string,
  placement: CompiledPlacement,
  winner: Eligible,
  traces: CandidateTrace[] | null,
): Decision {
  const { experience, variant } = winner;
  const reason = experience.experiment && variant ? "EXPERIMENT" : "TARGET_MATCH";
  const decision = decisionOf(
    run,
    placementId,
    placement,
    winner.content,
    experience.id,
    variant,
    reason,
    experience.index,
  );
  traces?.push({
    experience: experience.id,
    ruleIndex: experience.index,
    outcome: "won",
    detail: experience.experiment && variant ? layerWinDetail(experience.experiment) : null,
  });
  run.exposures.push({
    experience: experience.id,
    placement: placementId,
    experiment: experience.experiment?.id ?? null,
    variant,
    capped: experience.caps.length > 0,
  });
  if (placement.group) useGroup(run, placement.group);
  return decision;
}

/** No winner: the placement's default content, and why it shows. */
function defaultDecision(
  run: DecisionRun,
  placementId: string,
  placement: CompiledPlacement,
  heldOut: boolean,
  excluded: boolean,
): Decision {
  const reason = heldOut
    ? "HOLDOUT"
    : excluded
      ? "EXCLUDED"
      : placement.experiences.length
        ? "DEFAULT"
        : "FALLTHROUGH";
  return decisionOf(run, placementId, placement, placement.fallback, null, null, reason, null);
}

function traceUnreached(traces: CandidateTrace[], placement: CompiledPlacement, stoppedBy: string): void {
  const experiences = placement.experiences;
  // The search traces candidates in order, so those traced are usually the first ones: then the
  // rest are the unreached, with no set of names built (at 2,000 rules a placement has 100).
  let prefix = traces.length <= experiences.length;
  for (let i = 0; prefix && i < traces.length; i++) prefix = traces[i]!.experience === experiences[i]!.id;
  if (prefix) {
    // One push of them all: the list grows once, not once per few entries.
    traces.push(...unreachedTraces(placement, traces.length, stoppedBy));
    return;
  }
  const traced = new Set(traces.map((trace) => trace.experience));
  for (const experience of experiences)
    if (!traced.has(experience.id)) recordLoss(traces, experience, "lower_priority", stoppedBy);
}

/**
 * The traces of a placement's candidates from `from` on, never reached for `stoppedBy`: the same for
 * every visitor stopped at the same candidate, so made once per rules version and shared (frozen)
 * by every explanation that lists them. At 2,000 rules an explained page lists some 1,900 of them,
 * and making them per decision was most of its garbage and its long tail.
 */
function unreachedTraces(
  placement: CompiledPlacement,
  from: number,
  stoppedBy: string,
): readonly CandidateTrace[] {
  let known = unreached.get(placement);
  if (!known) {
    known = new Map();
    unreached.set(placement, known);
  }
  const key = `${from} ${stoppedBy}`;
  let traces = known.get(key);
  if (!traces) {
    const made: CandidateTrace[] = [];
    for (let i = from; i < placement.experiences.length; i++) {
      const experience = placement.experiences[i]!;
      made.push(
        Object.freeze({
          experience: experience.id,
          ruleIndex: experience.index,
          outcome: "lower_priority",
          detail: stoppedBy,
        }),
      );
    }
    traces = Object.freeze(made);
    // Bounded: a placement has one such list per candidate a search can stop at, and a held-out
    // reason per experiment; past the bound they are made per decision, as before.
    if (known.size < MAX_UNREACHED_LISTS) known.set(key, traces);
  }
  return traces;
}

const MAX_UNREACHED_LISTS = 256;
const unreached = new WeakMap<CompiledPlacement, Map<string, readonly CandidateTrace[]>>();

/**
 * One decision, its content rendered. Built as one literal (no spreads of partial objects): every
 * decision has the same shape, and a page's twenty cost twenty allocations, not sixty.
 */
function decisionOf(
  run: DecisionRun,
  placementId: string,
  placement: CompiledPlacement,
  content: CompiledContent | null,
  experience: string | null,
  variant: string | null,
  reason: Reason,
  ruleIndex: number | null,
): Decision {
  let html: string | null = null;
  let json: unknown = null;
  let items: readonly RankedItem[] | null = null;
  if (content) {
    // A ranked list is ranked once and rendered by the templates (`{{#each items}}`) and in the answer.
    items = content.items ? rankItems(content.items, run.scope) : null;
    const scope: TemplateScope = items ? { ...run.templateScope, items } : run.templateScope;
    html = renderTemplate(content, placement, run, scope);
    json = content.json ? content.json(scope) : null;
  }
  return {
    placement: placementId,
    action: placement.action,
    selector: placement.selector,
    attribute: placement.attribute,
    ttl: placement.ttl,
    experience,
    variant,
    html,
    json,
    items,
    reason,
    ruleIndex,
  };
}

/** The fragment, redirect target or attribute value the placement's action takes. */
function renderTemplate(
  content: CompiledContent,
  placement: CompiledPlacement,
  run: DecisionRun,
  scope: TemplateScope,
): string | null {
  const template =
    placement.action === "redirect"
      ? content.redirect
      : placement.action === "set_attribute"
        ? content.attribute
        : content.html;
  let html = template ? template(scope) : null;
  // A target rendered from request or profile data (`{{ context.query.next }}`) goes only where the
  // rules allow (url-policy.ts); a refused one renders nothing, so the page is served as it came.
  if (html && placement.action === "redirect") {
    if (run.siteHost === undefined) run.siteHost = hostOf(run.context.url);
    html = redirectTarget(html, run.siteHost, run.rules.settings?.redirectHosts ?? NO_HOSTS);
  }
  return html;
}

const NO_SEGMENTS: readonly string[] = Object.freeze([]);

function segmentsOf(rules: DecisionRules, scope: EvalScope): string[] {
  let named = namedSegments.get(rules);
  if (!named) {
    named = Object.entries(rules.segments);
    namedSegments.set(rules, named);
  }
  const segments: string[] = [];
  for (const [id, test] of named) if (test(scope)) segments.push(id);
  return segments;
}

/** Each rules version's segments as a list, made once: the API lists them on every decision. */
const namedSegments = new WeakMap<DecisionRules, ReadonlyArray<readonly [string, Test]>>();

/**
 * Which channel and when, for outbound channels: the channel with the best engagement rate, and
 * the hour this person engages on that channel (all channels' hours until that one has enough), in
 * their time zone (TIMEZONE_SOURCES) at the time of the decision.
 */
function outboundTiming(
  context: RequestContext,
  state: VisitorState | null,
  traits: Traits,
  now: number,
): OutboundTiming | null {
  if (!OUTBOUND.has(context.channel)) return null;
  const zone = personZone(context, state, traits);
  const channel = state ? preferredChannel(state.engagement).channel : null;
  let hour: number | null = null;
  if (state) {
    // Counted in UTC (visitor-state.ts): shifted by the zone's offset now, summer time included.
    const offset = utcOffsetMinutes(zone.timezone, now) ?? 0;
    const hours = channel ? own(state.engagement, channel)?.hours : undefined;
    hour =
      (hours ? bestHour(localHours(hours, offset)) : null) ??
      bestHour(localHours(state.engagementHours, offset));
  }
  return { channel, hour, ...zone };
}

/** The person's time zone and where it came from: the request, a trait, their events, else UTC. */
function personZone(
  context: RequestContext,
  state: VisitorState | null,
  traits: Traits,
): Pick<OutboundTiming, "timezone" | "timezoneSource"> {
  if (isTimeZone(context.geo.timezone)) return { timezone: context.geo.timezone, timezoneSource: "request" };
  const trait = own(traits, "timezone");
  if (isTimeZone(trait)) return { timezone: trait, timezoneSource: "trait" };
  const events = state?.events ?? [];
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i];
    // The log is checked as it is read (normalize.ts keeps it as it came).
    if (!isStoredEvent(event)) continue;
    const props = event.props;
    const named = own(props, "tz") ?? own(props, "timezone");
    if (isTimeZone(named)) return { timezone: named, timezoneSource: "last_seen" };
  }
  return { timezone: "UTC", timezoneSource: "utc" };
}
