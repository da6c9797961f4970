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
const isEvent = (value: unknown): value is StateEvent =>
  isObject(value) && typeof value.type === "string" && typeof value.ts === "number" && isObject(value.props);

// Entry guards, one per kind of map. Each map is filtered at its own call site with its own guard:
// this runs on every decision, and one shared generic filter made the calls megamorphic (measurably
// slower in bench/decide.bench.ts).
const numberEntry = (entry: [string, unknown]): entry is [string, number] => typeof entry[1] === "number";
const stringEntry = (entry: [string, unknown]): entry is [string, string] => typeof entry[1] === "string";
/** Exposure times: the array is kept as it is (the caps count only numbers greater than a time). */
const timesEntry = (entry: [string, unknown]): entry is [string, number[]] => Array.isArray(entry[1]);
const scoreEntry = (entry: [string, unknown]): entry is [string, { value: number; ts: number }] =>
  isObject(entry[1]) && typeof entry[1].value === "number" && typeof entry[1].ts === "number";
const engagementEntry = (entry: [string, unknown]): entry is [string, Engagement] =>
  isObject(entry[1]) &&
  typeof entry[1].sends === "number" &&
  typeof entry[1].opens === "number" &&
  typeof entry[1].clicks === "number" &&
  (entry[1].hours === undefined || Array.isArray(entry[1].hours));

/** A record's entries (none when it is not a record), to filter by the shape of their values. */
const entriesOf = (value: unknown): Array<[string, unknown]> => Object.entries(recordOrEmpty<unknown>(value));

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
    prunedThrough: finiteOrNull(state.prunedThrough),
    lastByType: Object.fromEntries(entriesOf(state.lastByType).filter(numberEntry)),
    intent: Object.fromEntries(entriesOf(state.intent).filter(scoreEntry)),
    engagement: Object.fromEntries(entriesOf(state.engagement).filter(engagementEntry)),
    engagementHours: Array.isArray(state.engagementHours)
      ? state.engagementHours.map((count) => (typeof count === "number" ? count : 0))
      : [],
    exposures: Object.fromEntries(entriesOf(state.exposures).filter(timesEntry)),
    assignments: Object.fromEntries(entriesOf(state.assignments).filter(stringEntry)),
    conversions: Object.fromEntries(entriesOf(state.conversions).filter(numberEntry)),
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
