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

const clamp = (value: number, cap: number) => {
  const bound = cap > 0 ? cap : Number.POSITIVE_INFINITY;
  return Math.max(-bound, Math.min(bound, value));
};

/** A dimension's setting by an outside name (own keys only); 0 when it has none. */
const settingOf = (settings: Readonly<Record<string, number>>, dimension: string): number =>
  Object.hasOwn(settings, dimension) ? (settings[dimension] ?? 0) : 0;

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

/**
 * Every dimension decayed to `now`. Own keys only; an entry that is not a score (`{ value, ts }`
 * numbers) is skipped, so a decision reads a stored map without checking it first.
 */
export function decayAll(
  scores: Readonly<Record<string, IntentScore>>,
  now: number,
  halfLives: Readonly<Record<string, number>>,
): Record<string, number> {
  const values: Record<string, number> = {};
  for (const dimension of Object.keys(scores)) {
    const score: unknown = scores[dimension];
    if (!isScore(score)) continue;
    setOwn(values, dimension, decayed(score, now, settingOf(halfLives, dimension)));
  }
  return values;
}

function isScore(value: unknown): value is IntentScore {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    typeof (value as IntentScore).value === "number" &&
    typeof (value as IntentScore).ts === "number"
  );
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
  // Keys, not entries: no pair allocated per dimension (this runs on every decision).
  for (const candidate of Object.keys(values)) {
    const score = values[candidate]!;
    if (score > value || (score === value && dimension !== null && candidate < dimension)) {
      dimension = candidate;
      value = score;
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
  let dimension: string | null = null;
  let value = 0;
  for (const candidate of Object.keys(scores)) {
    const score = decayed(scores[candidate], now, settingOf(halfLives, candidate));
    if (score > value || (score === value && dimension !== null && candidate < dimension)) {
      dimension = candidate;
      value = score;
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
  const scoreOf = (scores: Scores, dimension: string) =>
    Object.hasOwn(scores, dimension) ? scores[dimension] : undefined;
  const merged: Array<[string, IntentScore]> = [];
  for (const dimension of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const halfLife = settingOf(halfLives, dimension);
    const sum = decayed(scoreOf(a, dimension), now, halfLife) + decayed(scoreOf(b, dimension), now, halfLife);
    merged.push([dimension, { value: clamp(sum, settingOf(caps, dimension)), ts: now }]);
  }
  return Object.fromEntries(merged);
}

/**
 * A backfill: scores with one part of their history (`replaced`, the scores that part alone gives)
 * swapped for another (`replacement`, the same part with the backfilled events in it, in time order).
 * Per dimension the three are decayed to the latest of their times, `current − replaced + replacement`,
 * clamped to the cap and stamped with that time. When `current` is exactly what `replaced` gives (the
 * whole history is in that part), the answer is exactly `replacement`: the scores of the history
 * arrived in time order. Dimensions in neither part keep their score. Own keys only.
 *
 * @example rebaseIntent({ running: { value: 3, ts: t } }, { running: { value: 3, ts: t } }, { running: { value: 5, ts: t } }, {}, {})
 *   // { running: { value: 5, ts: t } }
 */
export function rebaseIntent(
  current: Scores,
  replaced: Scores,
  replacement: Scores,
  halfLives: Readonly<Record<string, number>>,
  caps: Readonly<Record<string, number>>,
): Record<string, IntentScore> {
  const scoreOf = (scores: Scores, dimension: string) =>
    Object.hasOwn(scores, dimension) ? scores[dimension] : undefined;
  const out: Record<string, IntentScore> = {};
  for (const dimension of Object.keys(current)) setOwn(out, dimension, current[dimension]!);
  for (const dimension of new Set([...Object.keys(replaced), ...Object.keys(replacement)])) {
    const parts = [
      scoreOf(current, dimension),
      scoreOf(replaced, dimension),
      scoreOf(replacement, dimension),
    ];
    const at = Math.max(...parts.map((part) => part?.ts ?? Number.NEGATIVE_INFINITY));
    const halfLife = settingOf(halfLives, dimension);
    const [now, before, after] = parts.map((part) => decayed(part, at, halfLife)) as [number, number, number];
    setOwn(out, dimension, { value: clamp(now - before + after, settingOf(caps, dimension)), ts: at });
  }
  return out;
}
