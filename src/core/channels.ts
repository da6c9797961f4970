import type { ChannelEngagement } from "./model.ts";

/**
 * Channel preference and timing.
 *
 * The engagement rate is a posterior mean with a Beta(α = 1, β = 9) prior — as if every channel had
 * already been tried 10 times with 1 engagement (a 10% rate, about a typical email click rate):
 *
 *   engaged = clicks + opens / 2
 *   rate    = (engaged + 1) / (max(sends, engaged) + 10)
 *
 * so one click out of one send (2/11 ≈ 0.18) does not outrank 40 out of 100 (41/110 ≈ 0.37), and
 * evidence overtakes the prior after a few dozen sends. Opens count half: they are weaker (and, with
 * image blocking and privacy proxies, noisier) than clicks. `max(sends, engaged)` keeps channels without
 * sends (web, app: engagement without outbound messages) and double-counted open+click below 1.
 * Negative or non-finite counters count as 0.
 */
const PRIOR_ENGAGED = 1;
const PRIOR_SENDS = 10;

const count = (n: number) => (Number.isFinite(n) && n > 0 ? n : 0);

/** @example engagementRate({ sends: 100, opens: 0, clicks: 40, lastAt: null }) // 41 / 110 ≈ 0.373 */
export function engagementRate(stats: ChannelEngagement): number {
  const engaged = count(stats.clicks) + count(stats.opens) / 2;
  return (engaged + PRIOR_ENGAGED) / (Math.max(count(stats.sends), engaged) + PRIOR_SENDS);
}

/**
 * The channel this person engages with most. Only channels with at least one open or click are ranked
 * (a channel never engaged with is not a preference, however few messages it was sent); ties go to the
 * name that sorts first. `candidates` restricts the channels
 * considered, e.g. to those a campaign can actually use; null when none qualifies.
 *
 * @example preferredChannel({ email: { sends: 100, opens: 40, clicks: 30, lastAt: null } }, ["email", "sms"])
 *   // { channel: "email", rate: 0.4909…, ranked: [{ channel: "email", rate: 0.4909… }] }
 */
export function preferredChannel(
  engagement: Readonly<Record<string, ChannelEngagement>>,
  candidates?: readonly string[],
): { channel: string | null; rate: number; ranked: Array<{ channel: string; rate: number }> } {
  const names = candidates ? [...new Set(candidates)] : Object.keys(engagement);
  const ranked: Array<{ channel: string; rate: number }> = [];
  for (const channel of names) {
    if (!Object.hasOwn(engagement, channel)) continue;
    const stats = engagement[channel];
    // Stored state is validated at the edge; a malformed entry is still skipped, never a throw.
    if (typeof stats !== "object" || stats === null) continue;
    if (count(stats.clicks) + count(stats.opens) > 0) ranked.push({ channel, rate: engagementRate(stats) });
  }
  ranked.sort((a, b) => b.rate - a.rate || (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0));
  const best = ranked[0];
  return { channel: best?.channel ?? null, rate: best?.rate ?? 0, ranked };
}

/**
 * Engagement hours are counted in UTC (a person who travels keeps one clock); this is the same 24
 * counters seen from a zone `offsetMinutes` ahead of UTC. Each UTC hour's count goes to the local
 * hour holding that hour's middle, so a half-hour zone (Kolkata, +5:30) rounds up.
 *
 * @example localHours(utcHours, 60)[20] // Paris in winter: what was counted at 19:00 UTC
 */
export function localHours(utcHours: readonly number[], offsetMinutes: number): number[] {
  const local = new Array<number>(24).fill(0);
  for (let h = 0; h < 24; h++) {
    const middle = (((h * 60 + 30 + offsetMinutes) % 1440) + 1440) % 1440;
    local[Math.floor(middle / 60)]! += count(utcHours[h] ?? 0);
  }
  return local;
}

/**
 * The hour of day (0–23, in whatever clock the counters are in) with most engagement; ties go to the earliest hour.
 * Null until the 24 counters hold at least `minSamples` engagements in all. Entries past 23 are ignored,
 * negative or non-finite ones count as 0.
 *
 * @example bestHour([0, 0, 0, 0, 0, 0, 0, 0, 5, 1, ...]) // 8
 */
export function bestHour(engagementHours: readonly number[], minSamples = 3): number | null {
  let total = 0;
  let best: number | null = null;
  let bestCount = 0;
  for (let h = 0; h < 24; h++) {
    const n = count(engagementHours[h] ?? 0);
    total += n;
    if (n > bestCount) {
      best = h;
      bestCount = n;
    }
  }
  return total >= minSamples ? best : null;
}
