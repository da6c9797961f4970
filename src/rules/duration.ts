/** Durations in rules are strings a person reads: "90s", "30m", "12h", "7d", "2w", or "1d12h". */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };
export const DURATION_PATTERN = /^(\d+(ms|s|m|h|d|w))+$/;

export function parseDuration(text: string): number | null {
  if (!DURATION_PATTERN.test(text)) return null;
  let total = 0;
  for (const m of text.matchAll(/(\d+)(ms|s|m|h|d|w)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return total;
}
