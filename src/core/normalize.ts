import type { RequestContext, VisitorState } from "./model.ts";

/**
 * The engine promises never to throw, whatever it is handed: state and context of the wrong shape
 * are read with safe defaults here, and our own shapes pass through without a copy.
 */

export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The state comes from our own Durable Object, but the engine does not trust shapes it did not
 * build: any field of the wrong type is read as empty, so evaluation never throws.
 */
export function normalizeState(s: VisitorState | null): VisitorState | null {
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

const EMPTY_GEO: RequestContext["geo"] = { country: null, region: null, city: null, timezone: null };

/**
 * The request context is built by the edge, but the engine promises never to throw, whatever it is
 * handed: a context of the wrong shape is read with safe defaults. Our own contexts pass untouched.
 */
export function normalizeContext(c: RequestContext): RequestContext {
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
