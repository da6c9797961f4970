/**
 * IANA time zones (`Europe/Paris`) for the engine: whether a name is one, and how far it is from UTC
 * at a given time. Engagement hours are stored in UTC and read in the person's zone at decision time
 * (src/core/channels.ts `localHours`), so the zone is resolved once per decision, never per event.
 */

/** Names come from requests, traits and events: a stream of made-up ones must not grow memory. */
const MAX_ZONES = 500;
/** Offsets change (summer time) on a quarter hour at the finest: one answer per zone per quarter. */
const SLOT_MS = 15 * 60e3;

const formats = new Map<string, Intl.DateTimeFormat | null>();
const offsets = new Map<string, { readonly slot: number; readonly minutes: number }>();

/** A formatter per zone, built once (building one costs far more than using it); null: not a zone. */
function formatFor(zone: string): Intl.DateTimeFormat | null {
  let format = formats.get(zone);
  if (format === undefined) {
    try {
      format = new Intl.DateTimeFormat("en-US", {
        timeZone: zone,
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        hourCycle: "h23",
      });
    } catch {
      format = null;
    }
    if (formats.size < MAX_ZONES) formats.set(zone, format);
  }
  return format;
}

/**
 * Whether `zone` is an IANA time zone name this runtime knows.
 *
 * @example isTimeZone("Europe/Paris") // true
 * @example isTimeZone("Mars/Olympus") // false
 */
export function isTimeZone(zone: unknown): zone is string {
  return typeof zone === "string" && zone.length > 0 && zone.length <= 64 && formatFor(zone) !== null;
}

/**
 * Minutes `zone` is ahead of UTC at `at` (epoch ms): 60 for Paris in winter, 120 in summer, −300 for
 * New York in winter, 330 for Kolkata; null when `zone` is not a time zone.
 *
 * @example utcOffsetMinutes("Europe/Paris", Date.parse("2026-11-22T10:00:00Z")) // 60
 */
export function utcOffsetMinutes(zone: string, at: number): number | null {
  const slot = Math.floor(at / SLOT_MS);
  const cached = offsets.get(zone);
  if (cached?.slot === slot) return cached.minutes;
  const format = isTimeZone(zone) ? formatFor(zone) : null;
  if (!format) return null;
  const part: Record<string, number> = {};
  for (const { type, value } of format.formatToParts(slot * SLOT_MS)) part[type] = Number(value);
  const wall = Date.UTC(part.year!, part.month! - 1, part.day!, part.hour! % 24, part.minute!);
  const minutes = Math.round((wall - slot * SLOT_MS) / 60e3);
  if (offsets.size < MAX_ZONES || offsets.has(zone)) offsets.set(zone, { slot, minutes });
  return minutes;
}
