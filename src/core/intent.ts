import type { IntentScore } from "./model.ts";

/**
 * Intent scores decay exponentially: a score stored as { value, ts } is worth
 * value × 2^(−Δt / halfLife) at a later time. Stored undecayed and decayed lazily on read, so a
 * score costs nothing while the visitor is away.
 */
export function decayed(score: IntentScore | undefined, now: number, halfLifeMs: number): number {
  if (!score) return 0;
  const dt = Math.max(0, now - score.ts);
  if (!(halfLifeMs > 0) || !Number.isFinite(halfLifeMs) || dt === 0) return score.value;
  return score.value * 2 ** (-dt / halfLifeMs);
}

/**
 * Adds a signal at time `at`, clamped to [−cap, cap]. An out-of-order event (older than the stored
 * score) adds its delta decayed to the stored time, so the order events arrive in does not matter.
 */
export function addSignal(
  score: IntentScore | undefined,
  delta: number,
  at: number,
  halfLifeMs: number,
  cap: number,
): IntentScore {
  const clamp = (v: number) => Math.max(-cap, Math.min(cap, v));
  if (!score) return { value: clamp(delta), ts: at };
  if (at < score.ts) {
    return {
      value: clamp(score.value + decayed({ value: delta, ts: at }, score.ts, halfLifeMs)),
      ts: score.ts,
    };
  }
  return { value: clamp(decayed(score, at, halfLifeMs) + delta), ts: at };
}

export function decayAll(
  scores: Readonly<Record<string, IntentScore>>,
  now: number,
  halfLives: Readonly<Record<string, number>>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [dimension, score] of Object.entries(scores)) {
    out[dimension] = decayed(score, now, halfLives[dimension] ?? Number.POSITIVE_INFINITY);
  }
  return out;
}

/** The strongest positive dimension; ties go to the alphabetically first, so the answer is stable. */
export function topIntent(decayedScores: Readonly<Record<string, number>>): {
  dimension: string | null;
  value: number;
} {
  let dimension: string | null = null;
  let value = 0;
  for (const [d, v] of Object.entries(decayedScores)) {
    if (v > value || (v === value && v > 0 && dimension !== null && d < dimension)) {
      dimension = d;
      value = v;
    }
  }
  return { dimension, value };
}

/** Stitching two visitors: both scores decayed to now and summed, within the cap. */
export function mergeIntent(
  a: Readonly<Record<string, IntentScore>>,
  b: Readonly<Record<string, IntentScore>>,
  now: number,
  dimensions: Readonly<Record<string, { halfLifeMs: number; cap: number }>>,
): Record<string, IntentScore> {
  const out: Record<string, IntentScore> = {};
  for (const d of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const dim = dimensions[d] ?? { halfLifeMs: Number.POSITIVE_INFINITY, cap: Number.POSITIVE_INFINITY };
    const sum = decayed(a[d], now, dim.halfLifeMs) + decayed(b[d], now, dim.halfLifeMs);
    out[d] = { value: Math.max(-dim.cap, Math.min(dim.cap, sum)), ts: now };
  }
  return out;
}
