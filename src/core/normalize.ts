import type { RequestContext, VisitorState } from "./model.ts";

/**
 * The engine promises never to throw, whatever it is handed: state and context of the wrong shape
 * are read with safe defaults here, and our own shapes pass through without a copy.
 */

export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

type Engagement = VisitorState["engagement"][string];

const finiteOrNull = (value: unknown): number | null =>
  typeof value === "number" && Number.isFinite(value) ? value : null;
const recordOrEmpty = <T>(value: unknown): Record<string, T> =>
  isObject(value) ? (value as Record<string, T>) : {};

// Value guards, one per kind of map.
const isNumber = (value: unknown): value is number => typeof value === "number";
const isString = (value: unknown): value is string => typeof value === "string";
/** Exposure times: the array is kept as it is (the caps count only numbers greater than a time). */
const isTimes = (value: unknown): value is number[] => Array.isArray(value);
const isEngagement = (value: unknown): value is Engagement =>
  isObject(value) &&
  typeof value.sends === "number" &&
  typeof value.opens === "number" &&
  typeof value.clicks === "number" &&
  (value.hours === undefined || Array.isArray(value.hours));

/**
 * A record whose own values all pass `valid` (our own object's always do) is kept as it is: this
 * runs on every decision, and copying seven maps was a good part of it. Otherwise the entries that
 * pass are copied; anything but a record reads as empty. `allValid` is the same check written out per
 * kind of map (below): one loop with no call per entry, since a decision checks five maps.
 */
function checkedRecord<T>(
  value: unknown,
  allValid: (record: Record<string, unknown>) => boolean,
  valid: (entry: unknown) => entry is T,
): Record<string, T> {
  if (!isObject(value)) return {};
  if (allValid(value)) return value as Record<string, T>;
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, T] => valid(entry[1])));
}

const allNumbers = (record: Record<string, unknown>): boolean => {
  for (const key in record) if (Object.hasOwn(record, key) && typeof record[key] !== "number") return false;
  return true;
};
const allStrings = (record: Record<string, unknown>): boolean => {
  for (const key in record) if (Object.hasOwn(record, key) && typeof record[key] !== "string") return false;
  return true;
};
const allTimes = (record: Record<string, unknown>): boolean => {
  for (const key in record) if (Object.hasOwn(record, key) && !Array.isArray(record[key])) return false;
  return true;
};
const allEngagements = (record: Record<string, unknown>): boolean => {
  for (const key in record) if (Object.hasOwn(record, key) && !isEngagement(record[key])) return false;
  return true;
};

const isCount = (count: unknown) => typeof count === "number";

/**
 * The state comes from our own Durable Object, but the engine does not trust shapes it did not
 * build: any field of the wrong type is read as empty, so evaluation never throws.
 */
export function normalizeState(state: VisitorState | null): VisitorState | null {
  if (!isObject(state)) return null;
  const visitorId = typeof state.visitorId === "string" ? state.visitorId : "";
  const firstSeen = finiteOrNull(state.firstSeen);
  const lastSeen = finiteOrNull(state.lastSeen);
  const sessionCount = finiteOrNull(state.sessionCount) ?? 0;
  // The log is kept as it is: each reader checks an entry as it reads it (isStoredEvent,
  // event-counts.ts), so a decision that reads no events does not walk 500 of them.
  const events: VisitorState["events"] = Array.isArray(state.events) ? state.events : [];
  const counts = recordOrEmpty<VisitorState["counts"][string]>(state.counts);
  const prunedThrough = finiteOrNull(state.prunedThrough);
  const lastByType = checkedRecord(state.lastByType, allNumbers, isNumber);
  // Read only through decayAll (scope.ts intentOf), which skips an entry that is not a score.
  const intent = recordOrEmpty<VisitorState["intent"][string]>(state.intent);
  const engagement = checkedRecord(state.engagement, allEngagements, isEngagement);
  const engagementHours = !Array.isArray(state.engagementHours)
    ? []
    : state.engagementHours.every(isCount)
      ? state.engagementHours
      : state.engagementHours.map((count) => (typeof count === "number" ? count : 0));
  const exposures = checkedRecord(state.exposures, allTimes, isTimes);
  const assignments = checkedRecord(state.assignments, allStrings, isString);
  const conversions = checkedRecord(state.conversions, allNumbers, isNumber);
  // Our own object's state passes every check unchanged: it is then read as it is, not copied
  // (what else it holds, such as `counting`, no reader of a decision looks at).
  if (
    visitorId === state.visitorId &&
    firstSeen === state.firstSeen &&
    lastSeen === state.lastSeen &&
    sessionCount === state.sessionCount &&
    events === state.events &&
    counts === state.counts &&
    prunedThrough === state.prunedThrough &&
    lastByType === state.lastByType &&
    intent === state.intent &&
    engagement === state.engagement &&
    engagementHours === state.engagementHours &&
    exposures === state.exposures &&
    assignments === state.assignments &&
    conversions === state.conversions
  )
    return state;
  return {
    visitorId,
    firstSeen,
    lastSeen,
    sessionCount,
    events,
    counts,
    prunedThrough,
    lastByType,
    intent,
    engagement,
    engagementHours,
    exposures,
    assignments,
    conversions,
  };
}

const EMPTY_GEO: RequestContext["geo"] = { country: null, region: null, city: null, timezone: null };

/**
 * The request context is built by the edge, but the engine promises never to throw, whatever it is
 * handed: a context of the wrong shape is read with safe defaults. Our own contexts pass untouched.
 */
export function normalizeContext(context: RequestContext): RequestContext {
  if (
    isObject(context) &&
    typeof context.channel === "string" &&
    typeof context.path === "string" &&
    isObject(context.geo) &&
    isObject(context.query) &&
    (context.geo.timezone === null || typeof context.geo.timezone === "string")
  ) {
    return context;
  }
  const given = (isObject(context) ? context : {}) as Record<string, unknown>;
  const geo = isObject(given.geo) ? given.geo : {};
  const text = (value: unknown) => (typeof value === "string" ? value : null);
  return {
    channel: text(given.channel) ?? "web",
    url: text(given.url),
    path: text(given.path) ?? "/",
    query: isObject(given.query) ? (given.query as Record<string, string>) : {},
    referrer: text(given.referrer),
    geo: isObject(given.geo)
      ? {
          country: text(geo.country),
          region: text(geo.region),
          city: text(geo.city),
          timezone: text(geo.timezone),
        }
      : EMPTY_GEO,
    device: (text(given.device) ?? "unknown") as RequestContext["device"],
    locale: text(given.locale),
    userAgent: text(given.userAgent),
    custom: isObject(given.custom) ? given.custom : {},
  };
}
