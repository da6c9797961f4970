import type { IntentScore } from "./model.ts";

/**
 * Intent scores decay exponentially: a score stored as `{ value, ts }` is worth
 * `value × 2^(−Δt / halfLife)` at a later time. Scores are stored undecayed and decayed lazily on
 * read, so a score costs nothing while the visitor is away, and no timer ever rewrites it.
 *
 * Conventions shared by every function here:
 * - a half-life that is ≤ 0, NaN or Infinity means "no decay"; a dimension missing from `halfLives`
 *   does not decay;
 * - a time before the score's `ts` (Δt < 0, e.g. a clock skew) reads the stored value, never inflates it;
 * - a cap missing or not a positive number means "no cap".
 */

/** `out[key] = value`, except that a "__proto__" key becomes data instead of replacing the prototype. */
function setOwn<T>(out: Record<string, T>, key: string, value: T) {
  if (key === "__proto__")
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}

const noDecay = (halfLifeMs: number) => !(halfLifeMs > 0) || halfLifeMs === Number.POSITIVE_INFINITY;

const clamp = (v: number, cap: number) => {
  const c = cap > 0 ? cap : Number.POSITIVE_INFINITY;
  return Math.max(-c, Math.min(c, v));
};

/**
 * The score's value at `now`.
 *
 * @example decayed({ value: 8, ts: 0 }, 2 * DAY, DAY) // 2
 */
export function decayed(score: IntentScore | undefined, now: number, halfLifeMs: number): number {
  if (!score) return 0;
  const dt = now - score.ts;
  if (!(dt > 0) || noDecay(halfLifeMs)) return score.value;
  return score.value * 2 ** (-dt / halfLifeMs);
}

/**
 * Adds a signal of `delta` (negative allowed, e.g. a return lowers purchase intent) observed at `now`:
 * the stored score is decayed to `now`, `delta` added, and the result clamped to [−cap, cap].
 *
 * An out-of-order event (older than the stored `ts`) adds its delta decayed to the stored time and
 * keeps `ts`, so without the cap the result does not depend on the order events arrive in. (The cap is
 * applied at each step, so once a score hits it, order can matter: capping is lossy by design.)
 *
 * @example addSignal(undefined, 5, t, DAY, 100) // { value: 5, ts: t }
 */
export function addSignal(
  score: IntentScore | undefined,
  delta: number,
  now: number,
  halfLifeMs: number,
  cap: number,
): IntentScore {
  if (!score) return { value: clamp(delta, cap), ts: now };
  if (now < score.ts) {
    return {
      value: clamp(score.value + decayed({ value: delta, ts: now }, score.ts, halfLifeMs), cap),
      ts: score.ts,
    };
  }
  return { value: clamp(decayed(score, now, halfLifeMs) + delta, cap), ts: now };
}

/** Every dimension decayed to `now`. Own keys only. */
export function decayAll(
  scores: Readonly<Record<string, IntentScore>>,
  now: number,
  halfLives: Readonly<Record<string, number>>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of Object.keys(scores)) {
    setOwn(out, d, decayed(scores[d], now, Object.hasOwn(halfLives, d) ? halfLives[d]! : 0));
  }
  return out;
}

/**
 * The strongest positive dimension among already-decayed values (for callers that cache `decayAll`).
 * Ties go to the name that sorts first (UTF-16 order, not locale), so the answer is stable;
 * when no value is above 0 the dimension is null and the value 0.
 */
export function topOfDecayed(values: Readonly<Record<string, number>>): {
  dimension: string | null;
  value: number;
} {
  let dimension: string | null = null;
  let value = 0;
  for (const [d, v] of Object.entries(values)) {
    if (v > value || (v === value && dimension !== null && d < dimension)) {
      dimension = d;
      value = v;
    }
  }
  return { dimension, value };
}

/**
 * The strongest positive dimension at `now`; ties go to the name that sorts first; nothing positive → null.
 *
 * @example topIntent({ running: { value: 3, ts: t }, hiking: { value: 3, ts: t } }, t, {}) // { dimension: "hiking", value: 3 }
 */
export function topIntent(
  scores: Readonly<Record<string, IntentScore>>,
  now: number,
  halfLives: Readonly<Record<string, number>>,
): { dimension: string | null; value: number } {
  // The same as topOfDecayed(decayAll(...)) without building the intermediate record.
  const raw = scores;
  const lives = halfLives;
  let dimension: string | null = null;
  let value = 0;
  for (const d of Object.keys(raw)) {
    const v = decayed(raw[d], now, Object.hasOwn(lives, d) ? lives[d]! : 0);
    if (v > value || (v === value && dimension !== null && d < dimension)) {
      dimension = d;
      value = v;
    }
  }
  return { dimension, value };
}

type Scores = Readonly<Record<string, IntentScore>>;

/**
 * Identity stitching: two visitors' scores, each decayed to `now`, summed per dimension and clamped to
 * the dimension's cap; every merged score is stamped `now`.
 *
 * Not idempotent: merging the same source twice counts it twice. Idempotency is the caller's job
 * (the visitor's object records the ids of merges it has applied and skips a repeated one).
 *
 * @example mergeIntent({ running: { value: 60, ts: t } }, { running: { value: 60, ts: t } }, t, { running: DAY }, { running: 100 })
 *   // { running: { value: 100, ts: t } }
 */
export function mergeIntent(
  a: Scores,
  b: Scores,
  now: number,
  halfLives: Readonly<Record<string, number>>,
  caps: Readonly<Record<string, number>>,
): Record<string, IntentScore> {
  const param = (m: Readonly<Record<string, number>>, d: string): number =>
    Object.hasOwn(m, d) ? (m[d] ?? 0) : 0;
  const ownScore = (m: Scores, d: string) => (Object.hasOwn(m, d) ? m[d] : undefined);
  const merged: Array<[string, IntentScore]> = [];
  for (const d of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const halfLife = param(halfLives, d);
    const sum = decayed(ownScore(a, d), now, halfLife) + decayed(ownScore(b, d), now, halfLife);
    merged.push([d, { value: clamp(sum, param(caps, d)), ts: now }]);
  }
  return Object.fromEntries(merged);
}
