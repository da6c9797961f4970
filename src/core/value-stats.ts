import { lnGamma, normalSf } from "./stats.ts";

/**
 * Value per visitor (revenue, order value) and its comparison between arms, from sufficient
 * statistics only: how many visitors, and the sums of the first three powers of each visitor's
 * value (0 for a visitor who did not convert). The experiment's shards keep these sums, so a
 * result is computed from counters, whatever the number of visitors or shards.
 *
 * The method: the visitor is the unit that was randomized, so each visitor's total value is one
 * observation and the mean per visitor is an ordinary sample mean (the delta method on per-visitor
 * sums reduces to this when the denominator is the number of visitors). Intervals:
 * - an arm's mean: mean ± t(0.975, n − 1) · s / √n;
 * - the difference between arms: Welch's t interval, with Welch–Satterthwaite degrees of freedom
 *   (unequal variances, the rule for revenue: a variant that changes who buys changes the spread);
 * - the relative uplift: the delta method on the log of the ratio of means,
 *   se² = s₁² / (n₁ m₁²) + s₀² / (n₀ m₀²), exp(log(m₁/m₀) ± z · se) − 1.
 * Revenue is skewed (most visitors 0, a few large orders), and the normal approximation behind
 * these intervals needs more visitors the more skewed the values are: Cochran's rule (n > 25 g₁²,
 * g₁ the sample skewness) says when, and each arm reports whether it holds. A bootstrap would need
 * every visitor's value at read time (not computable from counters, and costly in a Worker);
 * docs/decisions.md, record 15.
 */

/** A per-visitor value's sufficient statistics (n visitors; sums of value, value², value³). */
export interface ValueMoments {
  readonly n: number;
  readonly sum: number;
  readonly sumSquares: number;
  readonly sumCubes: number;
}

export const EMPTY_MOMENTS: ValueMoments = { n: 0, sum: 0, sumSquares: 0, sumCubes: 0 };

/** Two sets of moments as one (shards are merged this way). */
export function addMoments(a: ValueMoments, b: ValueMoments): ValueMoments {
  return {
    n: a.n + b.n,
    sum: a.sum + b.sum,
    sumSquares: a.sumSquares + b.sumSquares,
    sumCubes: a.sumCubes + b.sumCubes,
  };
}

const Z95 = 1.959963984540054;

/**
 * Regularized incomplete beta I_x(a, b), by the continued fraction of Numerical Recipes 6.4
 * (`betacf`, modified Lentz), on the side of x where it converges fast.
 */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (!(x > 0)) return 0;
  if (!(x < 1)) return 1;
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  if (x < (a + 1) / (a + b + 2)) return (front * betaFraction(x, a, b)) / a;
  return 1 - (front * betaFraction(1 - x, b, a)) / b;
}

function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m < 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return h;
}

/** Upper tail P(T > t) of Student's t with `df` degrees of freedom (the normal's when df is huge). */
export function studentTSf(t: number, df: number): number {
  if (!(df > 0)) return Number.NaN;
  if (df > 1e7) return normalSf(t);
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? tail : 1 - tail;
}

/** Student's t density with `df` degrees of freedom. */
function studentTPdf(t: number, df: number): number {
  return Math.exp(
    lnGamma((df + 1) / 2) -
      lnGamma(df / 2) -
      0.5 * Math.log(df * Math.PI) -
      ((df + 1) / 2) * Math.log1p((t * t) / df),
  );
}

/** Normal quantiles already computed: every interval asks for the same one or two. */
const normalQuantiles = new Map<number, number>();

/** The standard normal value with upper tail `p`, by bisection on the tail (erfc is cheap). */
function normalQuantile(p: number): number {
  const known = normalQuantiles.get(p);
  if (known !== undefined) return known;
  if (normalQuantiles.size > 16) normalQuantiles.clear();
  let lo = -40;
  let hi = 40;
  for (let i = 0; i < 200 && hi - lo > 1e-15; i++) {
    const mid = (lo + hi) / 2;
    if (normalSf(mid) > p) lo = mid;
    else hi = mid;
  }
  const z = (lo + hi) / 2;
  normalQuantiles.set(p, z);
  return z;
}

/**
 * The t value with upper tail `p` (0 < p < 0.5; e.g. 0.025 for a 95% interval). From the normal
 * value by the Cornish–Fisher expansion (Abramowitz & Stegun 26.7.5), exact to about 1e-9 from 100
 * degrees of freedom; below that refined by Newton's method on the tail, which from any start
 * left of the answer climbs to it without overshooting (the tail is convex for t > 0).
 */
export function studentTQuantile(p: number, df: number): number {
  const z = normalQuantile(p);
  const z3 = z ** 3;
  const z5 = z ** 5;
  const z7 = z ** 7;
  const z9 = z ** 9;
  const expansion =
    z +
    (z3 + z) / 4 / df +
    (5 * z5 + 16 * z3 + 3 * z) / 96 / df ** 2 +
    (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / 384 / df ** 3 +
    (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / 92160 / df ** 4;
  if (df >= 100) return expansion;
  let t = Math.max(0, expansion);
  for (let i = 0; i < 100; i++) {
    const step = (studentTSf(t, df) - p) / studentTPdf(t, df);
    const next = Math.max(0, t + step);
    if (Math.abs(next - t) <= 1e-13 * Math.max(1, next)) return next;
    t = next;
  }
  return t;
}

/** The sample variance (n − 1 in the denominator); 0 below two visitors or on rounding below zero. */
export function variance(m: ValueMoments): number {
  if (m.n < 2) return 0;
  return Math.max(0, (m.sumSquares - (m.sum * m.sum) / m.n) / (m.n - 1));
}

/** Sample skewness g₁ = m₃ / m₂^{3/2} (population moments); 0 when the values do not vary. */
export function skewness(m: ValueMoments): number {
  if (m.n < 2) return 0;
  const mean = m.sum / m.n;
  const m2 = m.sumSquares / m.n - mean * mean;
  if (!(m2 > 1e-12 * Math.max(1, mean * mean))) return 0;
  const m3 = m.sumCubes / m.n - 3 * mean * (m.sumSquares / m.n) + 2 * mean ** 3;
  return m3 / m2 ** 1.5;
}

/** Cochran's rule n > 25 g₁²: enough visitors for a normal approximation at this skew. */
function cochranHolds(m: ValueMoments): boolean {
  const g1 = skewness(m);
  return m.n >= 2 && m.n > 25 * g1 * g1;
}

export interface MeanEstimate {
  readonly mean: number;
  /** 95% t interval of the mean; null below two visitors. */
  readonly interval: readonly [number, number] | null;
  readonly skewness: number;
  /** Cochran's rule n > 25 g₁²: enough visitors for the normal approximation at this skew. */
  readonly normalApproximationOk: boolean;
}

/** An arm's value per visitor with its 95% interval. */
export function meanEstimate(m: ValueMoments): MeanEstimate {
  const mean = m.n > 0 ? m.sum / m.n : 0;
  const g1 = skewness(m);
  if (m.n < 2) return { mean, interval: null, skewness: g1, normalApproximationOk: false };
  const half = studentTQuantile(0.025, m.n - 1) * Math.sqrt(variance(m) / m.n);
  return {
    mean,
    interval: [mean - half, mean + half],
    skewness: g1,
    normalApproximationOk: cochranHolds(m),
  };
}

export interface MeanComparison {
  /** Mean − control mean. */
  readonly absolute: number;
  /** Welch's 95% interval of the difference. */
  readonly absoluteInterval: readonly [number, number];
  /** Welch–Satterthwaite; null when neither arm's values vary. */
  readonly degreesOfFreedom: number | null;
  readonly tScore: number;
  /** Two-sided p-value of Welch's t-test. */
  readonly pValue: number;
  /** Mean / control mean − 1; null when the control's mean is not positive. */
  readonly relative: number | null;
  /** Delta method on the log ratio of means; null when either mean is not positive. */
  readonly relativeInterval: readonly [number, number] | null;
  /** p < 0.05, the interval excludes 0, and both arms pass Cochran's rule. */
  readonly significant: boolean;
}

/** Welch's comparison of an arm's value per visitor with the control's; null below two visitors in either. */
export function compareMeans(arm: ValueMoments, control: ValueMoments): MeanComparison | null {
  if (arm.n < 2 || control.n < 2) return null;
  const m1 = arm.sum / arm.n;
  const m0 = control.sum / control.n;
  const v1 = variance(arm) / arm.n;
  const v0 = variance(control) / control.n;
  const se = Math.sqrt(v1 + v0);
  const absolute = m1 - m0;
  let df: number | null = null;
  let tScore = 0;
  let pValue = absolute === 0 ? 1 : 0;
  let absoluteInterval: [number, number] = [absolute, absolute];
  if (se > 0) {
    // Welch–Satterthwaite; a zero-variance arm contributes nothing to the denominator.
    df = (v1 + v0) ** 2 / (v1 ** 2 / (arm.n - 1) + v0 ** 2 / (control.n - 1));
    tScore = absolute / se;
    pValue = Math.min(1, 2 * studentTSf(Math.abs(tScore), df));
    const half = studentTQuantile(0.025, df) * se;
    absoluteInterval = [absolute - half, absolute + half];
  }
  let relativeInterval: [number, number] | null = null;
  if (m1 > 0 && m0 > 0) {
    const logSe = Math.sqrt(v1 / (m1 * m1) + v0 / (m0 * m0));
    const log = Math.log(m1 / m0);
    relativeInterval = [Math.exp(log - Z95 * logSe) - 1, Math.exp(log + Z95 * logSe) - 1];
  }
  const trusted = cochranHolds(arm) && cochranHolds(control);
  return {
    absolute,
    absoluteInterval,
    degreesOfFreedom: df,
    tScore,
    pValue,
    relative: m0 > 0 ? m1 / m0 - 1 : null,
    relativeInterval,
    significant: trusted && pValue < 0.05 && (absoluteInterval[0] > 0 || absoluteInterval[1] < 0),
  };
}
