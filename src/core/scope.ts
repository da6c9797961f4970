import { type CountPlan, type CountTally, countInWindow, countSince, isStoredEvent } from "./event-counts.ts";
import { DEFAULT_EVENT_SIDES, type EventSides, lastActivity } from "./event-sides.ts";
import { decayAll, decayed, topOfDecayed } from "./intent.ts";
import type { Consent, RequestContext, Traits, VisitorEvent, VisitorState } from "./model.ts";

/**
 * What one decision knows about one visitor, as compiled conditions read it. decide() builds the
 * scope; the views below derive from it lazily and are cached on it, so a view no rule reads costs
 * nothing and one many rules read is computed once per decision.
 */
export interface EvalScope {
  readonly now: number;
  readonly traits: Traits;
  readonly context: RequestContext;
  readonly state: VisitorState | null;
  readonly consent: Consent;
  readonly assignments: Record<string, string>;
  readonly halfLives: Readonly<Record<string, number>>;
  /** Which event types are brand sends and visits (the rules' settings.eventSides); defaults when absent. */
  readonly eventSides?: EventSides;
  /** How fast content affinity fades (settings.affinity.halfLife); absent: it does not fade. */
  readonly affinityHalfLifeMs?: number;
  /** The event being scored (signal conditions only). */
  readonly event?: VisitorEvent;
  intentCache?: Record<string, number>;
  topCache?: { dimension: string | null; value: number };
  tagCache?: Map<string, TagAffinity>;
  topTagCache?: { tag: string | null; weight: number; count: number };
  lastCategoryCache?: { category: string | null };
  clockCache?: LocalClock;
  segmentCache?: Map<string, boolean>;
  /** In an explained decision, what each segment's conditions told the trace (told again on reuse). */
  segmentTraces?: Map<string, ReadonlyArray<readonly [string, boolean, string]>>;
  /** The rules' planned windowed counts (event-counts.ts), each worked out at its first read. */
  countCache?: CountTally;
  visitorCache?: Record<string, unknown>;
  activityCache?: { at: number | null };
}

/** Told each condition's result and why, only when a decision is explained. */
export type Trace = (path: string, result: boolean, why: string) => void;
/** A compiled condition. */
export type Test = (scope: EvalScope, trace?: Trace) => boolean;

/** Every intent dimension decayed to the decision's time. */
export function intentOf(scope: EvalScope): Record<string, number> {
  if (!scope.intentCache)
    scope.intentCache = scope.state ? decayAll(scope.state.intent, scope.now, scope.halfLives) : {};
  return scope.intentCache;
}

/** The strongest intent dimension at the decision's time (null when nothing is positive). */
export function topOf(scope: EvalScope): { dimension: string | null; value: number } {
  if (!scope.topCache) scope.topCache = topOfDecayed(intentOf(scope));
  return scope.topCache;
}

/** A content tag's pull on the visitor: its events' weights, decayed to the decision, and how many. */
export interface TagAffinity {
  readonly weight: number;
  readonly count: number;
}

/**
 * Content affinity: per tag (`props.tags` of the person's recent events; what the brand sent is not
 * theirs), each event weighing 1 when it happens and fading with the rules' affinity half-life, as
 * intent does (no half-life: a plain count).
 */
export function affinityOf(scope: EvalScope): Map<string, TagAffinity> {
  if (!scope.tagCache) {
    const tags = new Map<string, { weight: number; count: number }>();
    const brandSends = (scope.eventSides ?? DEFAULT_EVENT_SIDES).brandSends;
    const halfLife = scope.affinityHalfLifeMs ?? 0;
    for (const event of scope.state?.events ?? []) {
      if (!isStoredEvent(event)) continue;
      const eventTags = event.props.tags;
      if (!Array.isArray(eventTags) || brandSends.has(event.type)) continue;
      // Like an intent score of 1 stored at the event's time (intent.ts), read now.
      const weight = halfLife > 0 ? decayed({ value: 1, ts: event.ts }, scope.now, halfLife) : 1;
      for (let i = 0; i < eventTags.length; i++) {
        const tag: unknown = eventTags[i];
        // A tag listed twice on one event counts once.
        if (typeof tag !== "string" || eventTags.indexOf(tag) !== i) continue;
        const entry = tags.get(tag);
        if (entry) {
          entry.weight += weight;
          entry.count += 1;
        } else tags.set(tag, { weight, count: 1 });
      }
    }
    scope.tagCache = tags;
  }
  return scope.tagCache;
}

/** The visitor's strongest content tag (ties to the name that sorts first); null when none. */
export function topTagOf(scope: EvalScope): { tag: string | null; weight: number; count: number } {
  if (!scope.topTagCache) {
    let top: { tag: string | null; weight: number; count: number } = { tag: null, weight: 0, count: 0 };
    for (const [tag, { weight, count }] of affinityOf(scope)) {
      if (weight > top.weight || (weight === top.weight && top.tag !== null && tag < top.tag))
        top = { tag, weight, count };
    }
    scope.topTagCache = top;
  }
  return scope.topTagCache;
}

/** The category the person browsed last (`props.category` of their latest event naming one), or null. */
export function lastCategoryOf(scope: EvalScope): string | null {
  if (!scope.lastCategoryCache) {
    const brandSends = (scope.eventSides ?? DEFAULT_EVENT_SIDES).brandSends;
    const events = scope.state?.events ?? [];
    let category: string | null = null;
    // Oldest first: the latest is found from the end, usually at once.
    for (let i = events.length - 1; i >= 0 && category === null; i--) {
      const event = events[i];
      if (!isStoredEvent(event)) continue;
      const named = event.props.category;
      if (typeof named === "string" && named !== "" && !brandSends.has(event.type)) category = named;
    }
    scope.lastCategoryCache = { category };
  }
  return scope.lastCategoryCache.category;
}

export interface LocalClock {
  /** Minutes since midnight. */
  readonly minutes: number;
  /** Day of the week, Sunday 0. */
  readonly dow: number;
}

const clockFormats = new Map<string, Intl.DateTimeFormat>();
const WEEKDAYS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

function clockFormat(timeZone: string): Intl.DateTimeFormat {
  return new Intl.DateTimeFormat("en-US", {
    timeZone,
    hour: "2-digit",
    minute: "2-digit",
    weekday: "short",
    hourCycle: "h23",
  });
}

/** A formatter per timezone, built once: building one costs far more than formatting with it. */
function clockFormatFor(timeZone: string): Intl.DateTimeFormat {
  let format = clockFormats.get(timeZone);
  if (!format) {
    try {
      format = clockFormat(timeZone);
    } catch {
      format = clockFormat("UTC");
    }
    // Bounded: the timezone comes from the request, and a stream of made-up ones must not grow memory.
    if (clockFormats.size < 500) clockFormats.set(timeZone, format);
  }
  return format;
}

/** The time of day and day of week in the visitor's timezone (UTC when unknown or invalid). */
export function localClockOf(scope: EvalScope): LocalClock {
  if (scope.clockCache) return scope.clockCache;
  let hour = 0;
  let minute = 0;
  let dow = 0;
  for (const part of clockFormatFor(scope.context.geo.timezone ?? "UTC").formatToParts(scope.now)) {
    if (part.type === "hour") hour = Number(part.value) % 24;
    else if (part.type === "minute") minute = Number(part.value);
    else if (part.type === "weekday") dow = WEEKDAYS[part.value] ?? 0;
  }
  scope.clockCache = { minutes: hour * 60 + minute, dow };
  return scope.clockCache;
}

/** When the person last did anything (brand sends are not theirs); null when never. */
export function lastActivityOf(scope: EvalScope): number | null {
  if (!scope.activityCache)
    scope.activityCache = {
      at: scope.state ? lastActivity(scope.state, scope.eventSides ?? DEFAULT_EVENT_SIDES) : null,
    };
  return scope.activityCache.at;
}

function visitorView(scope: EvalScope): Record<string, unknown> {
  return scope.state
    ? {
        id: scope.state.visitorId,
        sessionCount: scope.state.sessionCount,
        firstSeen: scope.state.firstSeen,
        lastSeen: lastActivityOf(scope),
        lastCategory: lastCategoryOf(scope),
      }
    : { sessionCount: 0 };
}

/** What a path's first segment names: the roots rules may read. */
function rootOf(scope: EvalScope, root: string): unknown {
  switch (root) {
    case "traits":
      return scope.traits;
    case "context":
      return scope.context;
    case "event":
      return scope.event;
    case "intent":
      return intentOf(scope);
    case "visitor":
      if (!scope.visitorCache) scope.visitorCache = visitorView(scope);
      return scope.visitorCache;
    default:
      return undefined;
  }
}

/**
 * A reader of a dotted path (split once, at compile time): the common roots read directly, so a
 * condition on `traits.tier` or `context.query.utm_campaign` does not look its root up by name on
 * every decision.
 */
export function pathReader(segments: readonly string[]): (scope: EvalScope) => unknown {
  const root = segments[0];
  if (root === "traits") {
    if (segments.length === 2) {
      const key = segments[1]!;
      return (scope) => {
        const traits = scope.traits;
        return typeof traits === "object" && traits !== null && Object.hasOwn(traits, key)
          ? traits[key]
          : undefined;
      };
    }
    return (scope) => readPath(scope.traits, segments, 1);
  }
  if (root === "context") return (scope) => readPath(scope.context, segments, 1);
  return (scope) => resolvePath(scope, segments);
}

/** Reads a dotted path (split once, at compile time) from the scope's roots. */
export function resolvePath(scope: EvalScope, segments: readonly string[]): unknown {
  return readPath(rootOf(scope, segments[0]!), segments, 1);
}

/** Reads a dotted path below an object with own-property checks only. */
export function readPath(root: unknown, segments: readonly string[], from: number): unknown {
  let current = root;
  for (let i = from; i < segments.length; i++) {
    if (current === null || typeof current !== "object") return undefined;
    const segment = segments[i]!;
    if (!Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

/** How many of the visitor's events of `type` fall in (since, now], those `where` accepts when given. */
export function countEvents(
  scope: EvalScope,
  type: string,
  since: number,
  where: ((event: VisitorEvent, now: number) => boolean) | null,
): number {
  if (!where) return countSince(scope.state, type, since, scope.now);
  return countInWindow(scope.state?.events, type, since, scope.now, where);
}

/** A count the rules planned (event-counts.ts): worked out at its first read in a decision, then kept. */
export function plannedCount(scope: EvalScope, plan: CountPlan, slot: number): number {
  let tally = scope.countCache;
  // A slot planned after the decision began (a condition compiled late) starts the counts again.
  if (tally === undefined || !tally.covers(plan, slot)) {
    tally = plan.tally(scope.state, scope.now);
    scope.countCache = tally;
  }
  return tally.count(slot);
}
