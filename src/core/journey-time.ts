import { preferredChannel } from "./channels.ts";
import type { ChannelEngagement, Millis } from "./model.ts";

/**
 * When and through which channel a journey's message goes: the person's best hour and quiet hours
 * in their own zone, and the order channels are tried in. Pure: the zone's offset and the time are
 * arguments (src/core/time-zone.ts resolves the offset).
 */

const MINUTE = 60e3;
const DAY_MINUTES = 1440;

/** Minutes after local midnight at `at` in a zone `offsetMinutes` ahead of UTC. */
function localMinutes(at: Millis, offsetMinutes: number): number {
  return (((Math.floor(at / MINUTE) + offsetMinutes) % DAY_MINUTES) + DAY_MINUTES) % DAY_MINUTES;
}

/**
 * The first instant at or after `now` when the local clock reads `hour`:00 (now itself when it is
 * already within that hour).
 *
 * @example nextHourAt(Date.parse("2026-11-22T10:30:00Z"), 18, 60) // 2026-11-22T17:00:00Z (18:00 in Paris)
 */
export function nextHourAt(now: Millis, hour: number, offsetMinutes: number): Millis {
  const minutes = localMinutes(now, offsetMinutes);
  const start = hour * 60;
  if (minutes >= start && minutes < start + 60) return now;
  const ahead = (start - minutes + DAY_MINUTES) % DAY_MINUTES;
  return (Math.floor(now / MINUTE) + ahead) * MINUTE;
}

/**
 * When quiet hours (`from`–`to`, minutes after local midnight, possibly across midnight) that hold
 * at `now` end; null when `now` is not in them.
 *
 * @example quietUntil(Date.parse("2026-11-22T22:30:00Z"), { from: 21 * 60, to: 8 * 60 }, 0) // next 08:00Z
 */
export function quietUntil(
  now: Millis,
  quiet: { readonly from: number; readonly to: number } | null,
  offsetMinutes: number,
): Millis | null {
  if (!quiet || quiet.from === quiet.to) return null;
  const minutes = localMinutes(now, offsetMinutes);
  const inside =
    quiet.from < quiet.to
      ? minutes >= quiet.from && minutes < quiet.to
      : minutes >= quiet.from || minutes < quiet.to;
  if (!inside) return null;
  const ahead = (quiet.to - minutes + DAY_MINUTES) % DAY_MINUTES;
  return (Math.floor(now / MINUTE) + ahead) * MINUTE;
}

/**
 * The order a message tries its channels in: the one this person engages with most among those the
 * step lists (src/core/channels.ts `preferredChannel`), then the others in the step's own order.
 * Consent is checked by the visitor's object on each, in this order.
 *
 * @example channelOrder(["email", "sms"], { sms: { sends: 3, opens: 0, clicks: 2, lastAt: null } }) // ["sms", "email"]
 */
export function channelOrder<C extends string>(
  listed: readonly C[],
  engagement: Readonly<Record<string, ChannelEngagement>>,
): C[] {
  const preferred = preferredChannel(engagement, listed).channel as C | null;
  return preferred ? [preferred, ...listed.filter((channel) => channel !== preferred)] : [...listed];
}
