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

/** Bounds an operator may set on the event log (wrangler vars), with what they are checked against. */
export const LIMIT_VARS = {
  EVENT_LOG_MAX: { min: 1, max: 10_000, field: "maxEvents", unitMs: 1 },
  EVENT_LOG_MAX_AGE_DAYS: { min: 1, max: 400, field: "maxEventAgeMs", unitMs: 86400e3 },
} as const;

/**
 * The state limits from the deployment's vars: each var a whole number in its range (a string, as
 * wrangler passes `[vars]`, or a number); a missing one keeps its default, an invalid one keeps its
 * default and is named in `problems`, so a typo never empties a log or lets it grow unbounded.
 *
 * @example limitsFrom({ EVENT_LOG_MAX: "200" }).limits.maxEvents // 200
 */
export function limitsFrom(
  vars: Readonly<Record<string, unknown>>,
  defaults: StateLimits = DEFAULT_LIMITS,
): { limits: StateLimits; problems: string[] } {
  const limits: { -readonly [K in keyof StateLimits]: StateLimits[K] } = { ...defaults };
  const problems: string[] = [];
  for (const [name, rule] of Object.entries(LIMIT_VARS)) {
    const raw = Object.hasOwn(vars, name) ? vars[name] : undefined;
    if (raw === undefined || raw === "") continue;
    const n =
      typeof raw === "number" ? raw : typeof raw === "string" && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(n) || n < rule.min || n > rule.max) {
      problems.push(`${name} must be a whole number from ${rule.min} to ${rule.max}; using the default`);
      continue;
    }
    limits[rule.field] = n * rule.unitMs;
  }
  return { limits, problems };
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
}

export interface MutableVisitorState {
  visitorId: string;
  firstSeen: Millis | null;
  lastSeen: Millis | null;
  sessionCount: number;
  events: VisitorEvent[];
  counts: Record<string, Array<[Millis, number]>>;
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

function hourOf(ts: Millis, tz: unknown): number {
  if (typeof tz === "string" && tz.length < 64) {
    try {
      const h = new Intl.DateTimeFormat("en-US", { timeZone: tz, hour: "2-digit", hourCycle: "h23" }).format(
        ts,
      );
      return Number(h) % 24;
    } catch {
      // An unknown timezone falls back to UTC.
    }
  }
  return new Date(ts).getUTCHours();
}

/** Applies one (new, validated) event. Events may arrive out of order; the log stays sorted by time. */
export function applyEvent(
  s: MutableVisitorState,
  e: VisitorEvent,
  scoring: Scoring | null,
  limits = DEFAULT_LIMITS,
): void {
  // Sessions: a gap of more than sessionGapMs since the last activity starts a new one.
  if (s.lastSeen === null || e.ts - s.lastSeen > limits.sessionGapMs) {
    if (s.lastSeen === null || e.ts > s.lastSeen) s.sessionCount += 1;
  }
  if (s.firstSeen === null || e.ts < s.firstSeen) s.firstSeen = e.ts;
  if (s.lastSeen === null || e.ts > s.lastSeen) s.lastSeen = e.ts;

  let i = s.events.length;
  while (i > 0 && s.events[i - 1]!.ts > e.ts) i--;
  s.events.splice(i, 0, e);

  const bucket = Math.floor(e.ts / HOUR_MS) * HOUR_MS;
  let buckets = own(s.counts, e.type);
  if (!buckets) {
    buckets = [];
    s.counts[e.type] = buckets;
  }
  const existing = buckets.find((b) => b[0] === bucket);
  if (existing) existing[1] += 1;
  else {
    buckets.push([bucket, 1]);
    buckets.sort((a, b) => a[0] - b[0]);
  }
  if ((own(s.lastByType, e.type) ?? Number.NEGATIVE_INFINITY) < e.ts) s.lastByType[e.type] = e.ts;

  if (scoring) {
    for (const { dimension, delta } of scoring.scoreEvent(e)) {
      const dim = own(scoring.dimensions, dimension);
      if (!dim) continue;
      s.intent[dimension] = addSignal(own(s.intent, dimension), delta, e.ts, dim.halfLifeMs, dim.cap);
    }
    if (scoring.conversionTypes?.has(e.type) && (own(s.conversions, e.type) ?? 0) < e.ts)
      s.conversions[e.type] = e.ts;
  } else if (e.type === "purchase" && (own(s.conversions, "purchase") ?? 0) < e.ts) {
    s.conversions.purchase = e.ts;
  }

  const m = ENGAGEMENT.exec(e.type);
  const engaged = m ? m[2] === "open" || m[2] === "click" : e.type === "page_view";
  const hour = engaged ? hourOf(e.ts, e.props.tz) : 0;
  if (m) {
    const channel = m[1]!;
    const prev = own(s.engagement, channel) ?? { sends: 0, opens: 0, clicks: 0, lastAt: null };
    const kind = m[2]!;
    const hours = prev.hours?.length === 24 ? [...prev.hours] : new Array<number>(24).fill(0);
    if (engaged) hours[hour]! += 1;
    s.engagement[channel] = {
      sends: prev.sends + (kind === "send" || kind === "sent" || kind === "delivered" ? 1 : 0),
      opens: prev.opens + (kind === "open" ? 1 : 0),
      clicks: prev.clicks + (kind === "click" ? 1 : 0),
      lastAt: engaged ? Math.max(prev.lastAt ?? 0, e.ts) : prev.lastAt,
      hours,
    };
  }
  if (engaged) s.engagementHours[hour]! += 1;
}

/** Keeps storage bounded: recent events by count and age, counters by age, exposures by count. */
export function prune(s: MutableVisitorState, now: Millis, limits = DEFAULT_LIMITS): void {
  const oldest = now - limits.maxEventAgeMs;
  let drop = 0;
  while (drop < s.events.length && s.events[drop]!.ts < oldest) drop++;
  drop = Math.max(drop, s.events.length - limits.maxEvents);
  if (drop > 0) s.events.splice(0, drop);
  const countFloor = now - limits.countRetentionMs;
  for (const [type, buckets] of Object.entries(s.counts)) {
    const kept = buckets.filter((b) => b[0] >= countFloor);
    if (kept.length) s.counts[type] = kept;
    else delete s.counts[type];
  }
  for (const [id, times] of Object.entries(s.exposures)) {
    if (times.length > limits.maxExposuresPerExperience)
      s.exposures[id] = times.slice(-limits.maxExposuresPerExperience);
  }
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
