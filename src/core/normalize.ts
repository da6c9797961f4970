import type { RequestContext, VisitorState } from "./model.ts";

/**
 * The engine promises never to throw, whatever it is handed: state and context of the wrong shape
 * are read with safe defaults here, and our own shapes pass through without a copy.
 */

export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

type StateEvent = VisitorState["events"][number];
type Engagement = VisitorState["engagement"][string];

const finiteOrNull = (value: unknown): number | null =>
  typeof value === "number" && Number.isFinite(value) ? value : null;
const recordOrEmpty = <T>(value: unknown): Record<string, T> =>
  isObject(value) ? (value as Record<string, T>) : {};
const isNumber = (value: unknown): value is number => typeof value === "number";
const isString = (value: unknown): value is string => typeof value === "string";
/** Exposure times: the array is kept as it is (the caps count only numbers greater than a time). */
const isTimes = (value: unknown): value is number[] => Array.isArray(value);
const isEvent = (value: unknown): value is StateEvent =>
  isObject(value) && typeof value.type === "string" && typeof value.ts === "number" && isObject(value.props);
const isScore = (value: unknown): value is { value: number; ts: number } =>
  isObject(value) && typeof value.value === "number" && typeof value.ts === "number";
const isEngagement = (value: unknown): value is Engagement =>
  isObject(value) &&
  typeof value.sends === "number" &&
  typeof value.opens === "number" &&
  typeof value.clicks === "number" &&
  (value.hours === undefined || Array.isArray(value.hours));

/** The entries of a record (an empty one when it is not a record) whose values have the right shape. */
function entriesWhere<T>(record: unknown, keep: (value: unknown) => value is T): Record<string, T> {
  return Object.fromEntries(
    Object.entries(recordOrEmpty<unknown>(record)).filter((entry): entry is [string, T] => keep(entry[1])),
  );
}

/**
 * The state comes from our own Durable Object, but the engine does not trust shapes it did not
 * build: any field of the wrong type is read as empty, so evaluation never throws.
 */
export function normalizeState(state: VisitorState | null): VisitorState | null {
  if (!isObject(state)) return null;
  // The common case (our own object's state) allocates nothing: the array is checked, then kept.
  const events: VisitorState["events"] = !Array.isArray(state.events)
    ? []
    : state.events.every(isEvent)
      ? state.events
      : state.events.filter(isEvent);
  return {
    visitorId: typeof state.visitorId === "string" ? state.visitorId : "",
    firstSeen: finiteOrNull(state.firstSeen),
    lastSeen: finiteOrNull(state.lastSeen),
    sessionCount: finiteOrNull(state.sessionCount) ?? 0,
    events,
    counts: recordOrEmpty(state.counts),
    lastByType: entriesWhere(state.lastByType, isNumber),
    intent: entriesWhere(state.intent, isScore),
    engagement: entriesWhere(state.engagement, isEngagement),
    engagementHours: Array.isArray(state.engagementHours)
      ? state.engagementHours.map((count) => (typeof count === "number" ? count : 0))
      : [],
    exposures: entriesWhere(state.exposures, isTimes),
    assignments: entriesWhere(state.assignments, isString),
    conversions: entriesWhere(state.conversions, isNumber),
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
