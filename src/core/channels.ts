import type { ChannelEngagement } from "./model.ts";

/**
 * Channel preference: the engagement rate per channel with a Beta prior, so one click out of one
 * send does not outrank forty out of a hundred. rate = (clicks + opens/2 + 1) / (sends + 4):
 * a channel never used scores 0.25, the prior mean.
 */
export function engagementRate(e: ChannelEngagement): number {
  const engaged = e.clicks + e.opens / 2;
  return (engaged + 1) / (Math.max(e.sends, engaged) + 4);
}

export function preferredChannel(
  engagement: Readonly<Record<string, ChannelEngagement>>,
  candidates?: readonly string[],
): { channel: string | null; rate: number; ranked: Array<{ channel: string; rate: number }> } {
  const names = candidates ?? Object.keys(engagement);
  const ranked = names
    .filter((c) => engagement[c] && engagement[c].clicks + engagement[c].opens > 0)
    .map((channel) => ({ channel, rate: engagementRate(engagement[channel]!) }))
    .sort((a, b) => b.rate - a.rate || a.channel.localeCompare(b.channel));
  const best = ranked[0];
  return { channel: best?.channel ?? null, rate: best?.rate ?? 0, ranked };
}

/** The hour (0–23, visitor's time) with most engagement; null until there are `minSamples` events. */
export function bestHour(engagementHours: readonly number[], minSamples = 3): number | null {
  let total = 0;
  let best = -1;
  let bestCount = 0;
  for (let h = 0; h < 24; h++) {
    const n = engagementHours[h] ?? 0;
    total += n;
    if (n > bestCount) {
      best = h;
      bestCount = n;
    }
  }
  return total >= minSamples && best >= 0 ? best : null;
}
