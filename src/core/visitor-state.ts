import { DEFAULT_EVENT_SIDES, type EventSides, lastVisit } from "./event-sides.ts";
import { addSignal } from "./intent.ts";
import type { ChannelEngagement, IntentScore, Millis, VisitorEvent, VisitorState } from "./model.ts";

/**
 * The arithmetic of a visitor's real-time state, pure: the Durable Object applies events with it at
 * ingest, and rule tests build states from fixture events with the very same code.
 */

export interface StateLimits {
  readonly maxEvents: number;
  readonly maxEventAgeMs: Millis;
  readonly countRetentionMs: Millis;
  readonly sessionGapMs: Millis;
  readonly maxExposuresPerExperience: number;
}

export const DEFAULT_LIMITS: StateLimits = {
  maxEvents: 500,
  maxEventAgeMs: 30 * 86400e3,
  countRetentionMs: 90 * 86400e3,
  sessionGapMs: 30 * 60e3,
  maxExposuresPerExperience: 50,
};

export const HOUR_MS = 3600e3;

/**
 * The state limits with the event log's bounds the deployment chose (EVENT_LOG_MAX and
 * EVENT_LOG_MAX_AGE_DAYS, parsed and checked with the rest of the configuration).
 *
 * @example stateLimits({ maxEvents: 200, maxEventAgeDays: 14 }).maxEventAgeMs // 14 days
 */
export function stateLimits(log: {
  readonly maxEvents: number;
  readonly maxEventAgeDays: number;
}): StateLimits {
  const maxEventAgeMs = log.maxEventAgeDays * 86400e3;
  // Counters reach at least as far back as the log: a window the log's age allows is never short of
  // counters when a busy visitor's log is cut by count instead.
  const countRetentionMs = Math.max(DEFAULT_LIMITS.countRetentionMs, maxEventAgeMs);
  return { ...DEFAULT_LIMITS, maxEvents: log.maxEvents, maxEventAgeMs, countRetentionMs };
}

/**
 * A state map's entry by a name that came from outside (an event type, an experiment id): the maps
 * are ordinary objects (null-prototype objects cannot cross Workers RPC), so `counts["constructor"]`
 * would otherwise read Object's prototype and the event would fail half-applied.
 */
export function own<T>(map: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

/** What scoring needs from the compiled rules (a structural subset of CompiledRules). */
export interface Scoring {
  scoreEvent(event: VisitorEvent): Array<{ dimension: string; delta: number }>;
  readonly dimensions: Readonly<Record<string, { readonly halfLifeMs: number; readonly cap: number }>>;
  /** Event types that count as conversions (purchase and experiment goals). */
  readonly conversionTypes?: ReadonlySet<string>;
  /** Which event types are visits and brand sends (the rules' settings.eventSides); defaults when absent. */
  readonly eventSides?: EventSides;
  /**
   * The event types whose hourly counters some condition reads (CompiledRules.countedTypes); absent:
   * the state keeps counting what it counted (`counting`).
   */
  readonly countedTypes?: ReadonlySet<string>;
}

export interface MutableVisitorState {
  visitorId: string;
  firstSeen: Millis | null;
  lastSeen: Millis | null;
  sessionCount: number;
  events: VisitorEvent[];
  counts: Record<string, Array<[Millis, number]>>;
  /**
   * The event types `counts` holds complete counters for, sorted; null: every type (state written
   * before the rules chose, and states built without rules).
   */
  counting: string[] | null;
  /** The time of the latest event the log has let go (null: none yet): it holds every event after it. */
  prunedThrough: Millis | null;
  lastByType: Record<string, Millis>;
  intent: Record<string, IntentScore>;
  engagement: Record<string, ChannelEngagement>;
  engagementHours: number[];
  exposures: Record<string, Millis[]>;
  assignments: Record<string, string>;
  conversions: Record<string, Millis>;
}

export function emptyState(visitorId: string): MutableVisitorState {
  return {
    visitorId,
    firstSeen: null,
    lastSeen: null,
    sessionCount: 0,
    events: [],
    counts: {},
    counting: null,
    prunedThrough: null,
    lastByType: {},
    intent: {},
    engagement: {},
    engagementHours: new Array<number>(24).fill(0),
    exposures: {},
    assignments: {},
    conversions: {},
  };
}

const ENGAGEMENT = /^(email|sms|push)_(send|sent|delivered|open|click)$/;

/** Applies one (new, validated) event. Events may arrive out of order; the log stays sorted by time. */
export function applyEvent(
  state: MutableVisitorState,
  event: VisitorEvent,
  scoring: Scoring | null,
  limits = DEFAULT_LIMITS,
): void {
  applySequenced(state, event, scoring, limits);
  insertByTime(state.events, event);
  if (counts(state, event.type, scoring)) countByHour(state, event);
  recordEngagement(state, event);
}

/**
 * Per state object, the set of counted types it was last brought in line with: checked per event by
 * identity, so the counters are reconciled once per object and rules version, not per event.
 */
const reconciledWith = new WeakMap<MutableVisitorState, ReadonlySet<string>>();

/**
 * Whether an event of `type` goes into the hourly counters: only the types the rules read through
 * counters (docs/decisions.md, record 21). Without rules, the state keeps counting what it counted.
 */
function counts(state: MutableVisitorState, type: string, scoring: Scoring | null): boolean {
  const wanted = scoring?.countedTypes;
  if (wanted) {
    if (reconciledWith.get(state) !== wanted) reconcileCounters(state, wanted);
    return wanted.has(type);
  }
  if (state.counting === null) return true;
  let counting = reconciledWith.get(state);
  if (!counting) {
    counting = new Set(state.counting);
    reconciledWith.set(state, counting);
  }
  return counting.has(type);
}

/**
 * Brings the counters in line with the types a rules version reads: a type no longer read loses its
 * counters (the state row shrinks), and a type newly read starts from the events the log holds, so a
 * new rule reads right for the log's whole reach from its first event on. Older events of that type
 * were never counted: beyond the log the counters are short until they age in.
 */
export function reconcileCounters(state: MutableVisitorState, wanted: ReadonlySet<string>): void {
  const before = state.counting === null ? null : new Set(state.counting);
  for (const type of Object.keys(state.counts)) if (!wanted.has(type)) delete state.counts[type];
  for (const type of wanted) {
    // before === null: every type was counted all along, its counters are complete as they are.
    if (before !== null && !before.has(type)) {
      const rebuilt = hourlyCounts(state.events, type);
      if (rebuilt.length) state.counts[type] = rebuilt;
      else delete state.counts[type];
    }
  }
  state.counting = [...wanted].sort();
  reconciledWith.set(state, wanted);
}

/** The log's events of one type, counted by hour, oldest first (the log is sorted by time). */
function hourlyCounts(events: readonly VisitorEvent[], type: string): Array<[Millis, number]> {
  const buckets: Array<[Millis, number]> = [];
  for (const event of events) {
    if (event.type !== type) continue;
    const hour = Math.floor(event.ts / HOUR_MS) * HOUR_MS;
    const last = buckets.at(-1);
    if (last?.[0] === hour) last[1] += 1;
    else buckets.push([hour, 1]);
  }
  return buckets;
}

/**
 * The part of `applyEvent` that reads what came before (sessions, capped intent) and what it
 * reads (first, last and latest times per type; conversions): all a replay in time order needs
 * (src/core/backfill.ts). The rest of applyEvent does not depend on the order events arrive in.
 */
export function applySequenced(
  state: MutableVisitorState,
  event: VisitorEvent,
  scoring: Scoring | null,
  limits = DEFAULT_LIMITS,
): void {
  trackSessions(state, event, scoring?.eventSides ?? DEFAULT_EVENT_SIDES, limits);
  if ((own(state.lastByType, event.type) ?? Number.NEGATIVE_INFINITY) < event.ts)
    state.lastByType[event.type] = event.ts;
  if (scoring) applyScoring(state, event, scoring);
  else if (event.type === "purchase" && (own(state.conversions, "purchase") ?? 0) < event.ts) {
    state.conversions.purchase = event.ts;
  }
}

/**
 * Sessions count visits only: a visit more than sessionGapMs after the last one starts a session, and
 * a newsletter received or opened is not a visit. First and last seen are the person's own activity:
 * a brand send moves neither. Runs before the event's own type is recorded in lastByType.
 */
function trackSessions(
  state: MutableVisitorState,
  event: VisitorEvent,
  sides: EventSides,
  limits: StateLimits,
): void {
  if (sides.brandSends.has(event.type)) return;
  if (sides.visits.has(event.type)) {
    const previous = lastVisit(state, sides);
    if (previous === null || event.ts - previous > limits.sessionGapMs) {
      if (previous === null || event.ts > previous) state.sessionCount += 1;
    }
  }
  if (state.firstSeen === null || event.ts < state.firstSeen) state.firstSeen = event.ts;
  if (state.lastSeen === null || event.ts > state.lastSeen) state.lastSeen = event.ts;
}

/** After every event at or before its time: late arrivals are rare and land near the end. */
function insertByTime(events: VisitorEvent[], event: VisitorEvent): void {
  let i = events.length;
  while (i > 0 && events[i - 1]!.ts > event.ts) i--;
  events.splice(i, 0, event);
}

/**
 * Hourly counters per event type, kept sorted by hour. Found by binary search: a backfill brings
 * months of hours at once, and a live event's hour is the last one, found at the first step.
 */
function countByHour(state: MutableVisitorState, event: VisitorEvent): void {
  const hour = Math.floor(event.ts / HOUR_MS) * HOUR_MS;
  let buckets = own(state.counts, event.type);
  if (!buckets) {
    buckets = [];
    state.counts[event.type] = buckets;
  }
  // Events arrive in time order almost always: their hour is the last bucket or a new one after
  // it, found at the first step (a search or a sort per event cost ingest nearly half its time).
  // A backfill's older hours are found by binary search. `lo`: the first bucket at or after the hour.
  let lo = buckets.length > 0 && buckets[buckets.length - 1]![0] <= hour ? buckets.length - 1 : 0;
  let hi = buckets.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (buckets[mid]![0] < hour) lo = mid + 1;
    else hi = mid;
  }
  const found = buckets[lo];
  if (found?.[0] === hour) found[1] += 1;
  else buckets.splice(lo, 0, [hour, 1]);
}

/** The rules' intent signals, and the event's time as the latest conversion of its type. */
function applyScoring(state: MutableVisitorState, event: VisitorEvent, scoring: Scoring): void {
  for (const { dimension, delta } of scoring.scoreEvent(event)) {
    const settings = own(scoring.dimensions, dimension);
    if (!settings) continue;
    state.intent[dimension] = addSignal(
      own(state.intent, dimension),
      delta,
      event.ts,
      settings.halfLifeMs,
      settings.cap,
    );
  }
  if (scoring.conversionTypes?.has(event.type) && (own(state.conversions, event.type) ?? 0) < event.ts)
    state.conversions[event.type] = event.ts;
}

/**
 * Outbound messages (email_open, sms_click…) count per channel; opens, clicks and page views count
 * toward the hour of day when this person engages. Hours are counted in UTC, whatever zone an event
 * names: a decision reads them in the person's zone of the moment (decide.ts `outboundTiming`), so a
 * person who travels or crosses a summer-time change keeps one consistent history.
 */
function recordEngagement(state: MutableVisitorState, event: VisitorEvent): void {
  const message = ENGAGEMENT.exec(event.type);
  const engaged = message ? message[2] === "open" || message[2] === "click" : event.type === "page_view";
  const hour = engaged ? new Date(event.ts).getUTCHours() : 0;
  if (message) {
    const channel = message[1]!;
    const kind = message[2]!;
    const previous = own(state.engagement, channel) ?? { sends: 0, opens: 0, clicks: 0, lastAt: null };
    const hours = previous.hours?.length === 24 ? [...previous.hours] : new Array<number>(24).fill(0);
    if (engaged) hours[hour]! += 1;
    state.engagement[channel] = {
      sends: previous.sends + (kind === "send" || kind === "sent" || kind === "delivered" ? 1 : 0),
      opens: previous.opens + (kind === "open" ? 1 : 0),
      clicks: previous.clicks + (kind === "click" ? 1 : 0),
      lastAt: engaged ? Math.max(previous.lastAt ?? 0, event.ts) : previous.lastAt,
      hours,
    };
  }
  if (engaged) state.engagementHours[hour]! += 1;
}

/** What a prune let go: the log's oldest events, and whether anything at all went. */
export interface Pruned {
  readonly changed: boolean;
  /** The events the log let go, oldest first (none: the log kept every one). */
  readonly letGo: readonly VisitorEvent[];
}

/**
 * Keeps storage bounded: recent events by count and age, counters by age, exposures by count.
 * Answers what went, so storage can follow memory.
 */
export function prune(s: MutableVisitorState, now: Millis, limits = DEFAULT_LIMITS): Pruned {
  let changed = false;
  let letGo: VisitorEvent[] = [];
  const oldest = now - limits.maxEventAgeMs;
  let drop = 0;
  while (drop < s.events.length && s.events[drop]!.ts < oldest) drop++;
  drop = Math.max(drop, s.events.length - limits.maxEvents);
  if (drop > 0) {
    // Windowed counts read the counters for the part of a window the log no longer holds.
    const through = s.events[drop - 1]!.ts;
    if (s.prunedThrough === null || through > s.prunedThrough) s.prunedThrough = through;
    letGo = s.events.splice(0, drop);
    changed = true;
  }
  const countFloor = now - limits.countRetentionMs;
  for (const [type, buckets] of Object.entries(s.counts)) {
    const kept = buckets.filter((b) => b[0] >= countFloor);
    if (kept.length === buckets.length) continue;
    changed = true;
    if (kept.length) s.counts[type] = kept;
    else delete s.counts[type];
  }
  for (const [id, times] of Object.entries(s.exposures)) {
    if (times.length > limits.maxExposuresPerExperience) {
      s.exposures[id] = times.slice(-limits.maxExposuresPerExperience);
      changed = true;
    }
  }
  return { changed, letGo };
}

export function recordExposure(
  s: MutableVisitorState,
  experience: string,
  at: Millis,
  limits = DEFAULT_LIMITS,
): void {
  let times = own(s.exposures, experience);
  if (!times) {
    times = [];
    s.exposures[experience] = times;
  }
  times.push(at);
  if (times.length > limits.maxExposuresPerExperience)
    times.splice(0, times.length - limits.maxExposuresPerExperience);
}

/** In a log sorted oldest first: the index of the first event later than `t` (binary search). */
export function firstAfter(events: readonly VisitorEvent[], t: Millis): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (events[mid]!.ts <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A read-only snapshot (a structured clone crosses the RPC boundary anyway). */
export function snapshotOf(s: MutableVisitorState): VisitorState {
  return s;
}
