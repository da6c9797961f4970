/**
 * Honest A/B statistics for `GET /_ns/v1/experiments/:id`, from unique exposures and conversions per arm.
 *
 * - Each arm's conversion rate gets a Wilson score 95% interval (good coverage at small counts and
 *   near 0, unlike the Wald interval).
 * - Each non-control arm is compared with the control arm (the one marked `isControl`, else the first;
 *   to compare with the holdout, pass the holdout as an arm marked `isControl`):
 *   - the absolute difference of rates with Newcombe's hybrid score interval (Newcombe 1998, method 10),
 *   - the relative uplift (rate / control rate − 1) with a 95% interval from the delta method on the log
 *     of the rate ratio: se = √((1 − p1)/c1 + (1 − p0)/c0), exp(log RR ± 1.96 se) − 1; null when either
 *     arm has no conversion (the log ratio is undefined),
 *   - a two-sided two-proportion z-test with the pooled rate.
 *   A difference is `significant` when p < 0.05 AND Newcombe's interval excludes 0 (the two agree
 *   except at the margin; requiring both is the conservative choice). With more than two arms each
 *   comparison is at 95% with no multiple-comparison correction; the note says so.
 * - Sample-ratio mismatch: a chi-square goodness-of-fit test of exposures against the weights,
 *   flagged when p < 0.001 (assignment or logging is broken; results should not be read).
 * - No verdict without data: an arm needs ≥ 100 exposures and ≥ 10 conversions, and so does the
 *   control, before its verdict is anything but "not enough data".
 *
 * Normal and chi-square distributions are computed here (no dependency): erfc by the Chebyshev fit in
 * Numerical Recipes (`erfcc`, relative error < 1.2e-7 everywhere, so small p-values stay accurate),
 * chi-square through the regularized incomplete gamma function with a Lanczos log-gamma.
 */

export interface ArmInput {
  readonly id: string;
  /** Planned traffic weight (any scale: weights are normalised), used for the sample-ratio check. */
  readonly weight: number;
  /** Unique visitors exposed. */
  readonly exposures: number;
  /** Unique exposed visitors who converted. */
  readonly conversions: number;
  readonly isControl?: boolean;
}

export type Verdict = "control" | "better" | "worse" | "no significant difference" | "not enough data";

export interface Uplift {
  /** Rate − control rate. */
  readonly absolute: number;
  /** Newcombe hybrid score 95% interval of the difference. */
  readonly absoluteInterval: readonly [number, number];
  /** Rate / control rate − 1; null when the control has no conversion. */
  readonly relative: number | null;
  /** Delta-method 95% interval on the log rate ratio, as uplift; null when either arm has no conversion. */
  readonly relativeInterval: readonly [number, number] | null;
  readonly zScore: number;
  /** Two-sided p-value of the pooled two-proportion z-test. */
  readonly pValue: number;
  readonly significant: boolean;
}

export interface ArmReport {
  readonly id: string;
  readonly isControl: boolean;
  readonly weight: number;
  readonly exposures: number;
  readonly conversions: number;
  /** Conversions / exposures (0 when no exposure). */
  readonly rate: number;
  /** Wilson score 95% interval of the rate ([0, 1] when no exposure). */
  readonly interval: readonly [number, number];
  /** Share of all exposures this arm got, and the share its weight planned. */
  readonly observedShare: number;
  readonly expectedShare: number;
  /** Versus the control; null for the control itself or when either has no exposure. */
  readonly uplift: Uplift | null;
  readonly verdict: Verdict;
}

export interface SampleRatioCheck {
  readonly chiSquare: number;
  readonly degreesOfFreedom: number;
  readonly pValue: number;
  /** p < 0.001: the split differs from the weights more than chance explains. */
  readonly flagged: boolean;
}

export interface ExperimentReport {
  readonly arms: readonly ArmReport[];
  /** The id of the arm the others are compared with; null when there are no arms. */
  readonly control: string | null;
  readonly sampleRatioMismatch: SampleRatioCheck;
  /** Every arm has ≥ 100 exposures and ≥ 10 conversions. */
  readonly enoughData: boolean;
  /** A sentence for humans: what can (not) be concluded. */
  readonly note: string;
}

export const MIN_EXPOSURES = 100;
export const MIN_CONVERSIONS = 10;
export const SRM_THRESHOLD = 0.001;
const Z95 = 1.959963984540054;

/** Complementary error function (Numerical Recipes `erfcc`, Chebyshev fit; relative error < 1.2e-7). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Standard normal CDF Φ(x). @example normalCdf(1.959964) // 0.975 */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/** Standard normal upper tail 1 − Φ(x), accurate far into the tail (no 1 − Φ cancellation). */
export function normalSf(x: number): number {
  return 0.5 * erfc(x / Math.SQRT2);
}

/** Wilson score interval for `successes` out of `n` (95% by default); [0, 1] when n is 0. */
export function wilson(successes: number, n: number, z = Z95): [number, number] {
  if (!(n > 0)) return [0, 1];
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** ln Γ(z) by the Lanczos approximation (g = 7, n = 9); about 15 significant digits for z > 0. */
export function lnGamma(z: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (z < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * z))) - lnGamma(1 - z);
  const x = z - 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/**
 * Regularized upper incomplete gamma Q(a, x) = 1 − P(a, x): the series for P below x = a + 1, the
 * Lentz continued fraction for Q above (Numerical Recipes 6.2), so each side keeps its precision.
 */
export function gammaQ(a: number, x: number): number {
  if (!(x > 0)) return 1;
  if (x === Number.POSITIVE_INFINITY) return 0;
  const front = Math.exp(-x + a * Math.log(x) - lnGamma(a));
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return Math.max(0, 1 - sum * front);
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return front * h;
}

/** Upper tail of the chi-square distribution with k degrees of freedom. @example chiSquareSf(3.841459, 1) // 0.05 */
export function chiSquareSf(x: number, k: number): number {
  return gammaQ(k / 2, x / 2);
}

/** Non-negative whole counts; conversions never above exposures (a logging glitch must not yield rates > 1). */
function clean(arm: ArmInput): { exposures: number; conversions: number } {
  const exposures = Number.isFinite(arm.exposures) && arm.exposures > 0 ? arm.exposures : 0;
  const c = Number.isFinite(arm.conversions) && arm.conversions > 0 ? arm.conversions : 0;
  return { exposures, conversions: Math.min(c, exposures) };
}

function compare(
  arm: { exposures: number; conversions: number },
  control: { exposures: number; conversions: number },
): Uplift {
  const { exposures: n1, conversions: x1 } = arm;
  const { exposures: n0, conversions: x0 } = control;
  const p1 = x1 / n1;
  const p0 = x0 / n0;
  const diff = p1 - p0;
  // Newcombe (1998) method 10: the difference's interval from the two Wilson intervals.
  const [l1, u1] = wilson(x1, n1);
  const [l0, u0] = wilson(x0, n0);
  const lower = diff - Math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2);
  const upper = diff + Math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2);
  let relativeInterval: [number, number] | null = null;
  if (x1 > 0 && x0 > 0) {
    const logRatio = Math.log(p1 / p0);
    const se = Math.sqrt((1 - p1) / x1 + (1 - p0) / x0);
    relativeInterval = [Math.exp(logRatio - Z95 * se) - 1, Math.exp(logRatio + Z95 * se) - 1];
  }
  const pooled = (x1 + x0) / (n1 + n0);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0));
  const zScore = se > 0 ? diff / se : 0;
  const pValue = se > 0 ? 2 * normalSf(Math.abs(zScore)) : 1;
  return {
    absolute: diff,
    absoluteInterval: [lower, upper],
    relative: p0 > 0 ? diff / p0 : null,
    relativeInterval,
    zScore,
    pValue,
    significant: pValue < 0.05 && (lower > 0 || upper < 0),
  };
}

function sampleRatio(arms: ReadonlyArray<{ weight: number; exposures: number }>): SampleRatioCheck {
  const weights = arms.map((a) => (Number.isFinite(a.weight) && a.weight > 0 ? a.weight : 0));
  const weightSum = weights.reduce((s, w) => s + w, 0);
  const total = arms.reduce((s, a) => s + a.exposures, 0);
  const planned = weights.filter((w) => w > 0).length;
  if (total === 0 || weightSum === 0 || arms.length < 2)
    return { chiSquare: 0, degreesOfFreedom: 0, pValue: 1, flagged: false };
  // Traffic to an arm planned at weight 0 cannot be chance.
  if (arms.some((a, i) => weights[i] === 0 && a.exposures > 0))
    return {
      chiSquare: Number.POSITIVE_INFINITY,
      degreesOfFreedom: Math.max(1, planned - 1),
      pValue: 0,
      flagged: true,
    };
  if (planned < 2) return { chiSquare: 0, degreesOfFreedom: 0, pValue: 1, flagged: false };
  let chi = 0;
  arms.forEach((a, i) => {
    const expected = (total * weights[i]!) / weightSum;
    if (expected > 0) chi += (a.exposures - expected) ** 2 / expected;
  });
  const df = planned - 1;
  const pValue = chiSquareSf(chi, df);
  return { chiSquare: chi, degreesOfFreedom: df, pValue, flagged: pValue < SRM_THRESHOLD };
}

type Counts = { exposures: number; conversions: number };

/** Enough to give a verdict on: the minimum exposures and conversions. */
const enough = (counts: Counts): boolean =>
  counts.exposures >= MIN_EXPOSURES && counts.conversions >= MIN_CONVERSIONS;

/** A planned weight usable for shares: a positive finite number, else 0. */
const usableWeight = (weight: number): number => (Number.isFinite(weight) && weight > 0 ? weight : 0);

/**
 * @example
 * analyzeExperiment([
 *   { id: "control", weight: 50, exposures: 5000, conversions: 500, isControl: true },
 *   { id: "bold", weight: 50, exposures: 5000, conversions: 600 },
 * ]).arms[1].verdict // "better" (uplift +20%, 95% CI about +7% to +34%, p ≈ 0.0014)
 */
export function analyzeExperiment(arms: ReadonlyArray<ArmInput>): ExperimentReport {
  const counts = arms.map(clean);
  const controlIndex = Math.max(
    0,
    arms.findIndex((arm) => arm.isControl === true),
  );
  const totals = {
    exposures: counts.reduce((sum, c) => sum + c.exposures, 0),
    weight: arms.reduce((sum, arm) => sum + usableWeight(arm.weight), 0),
  };
  const srm = sampleRatio(arms.map((arm, i) => ({ weight: arm.weight, exposures: counts[i]!.exposures })));
  const enoughData = counts.length > 0 && counts.every(enough);
  return {
    arms: arms.map((arm, i) => armReport(arm, counts[i]!, i === controlIndex, counts[controlIndex], totals)),
    control: arms[controlIndex]?.id ?? null,
    sampleRatioMismatch: srm,
    enoughData,
    note: reportNote(srm, enoughData, arms.length),
  };
}

function armReport(
  arm: ArmInput,
  counts: Counts,
  isControl: boolean,
  control: Counts | undefined,
  totals: { exposures: number; weight: number },
): ArmReport {
  const comparable = !isControl && control !== undefined && control.exposures > 0 && counts.exposures > 0;
  const uplift = comparable ? compare(counts, control) : null;
  return {
    id: arm.id,
    isControl,
    weight: arm.weight,
    exposures: counts.exposures,
    conversions: counts.conversions,
    rate: counts.exposures > 0 ? counts.conversions / counts.exposures : 0,
    interval: wilson(counts.conversions, counts.exposures),
    observedShare: totals.exposures > 0 ? counts.exposures / totals.exposures : 0,
    expectedShare: totals.weight > 0 ? usableWeight(arm.weight) / totals.weight : 0,
    uplift,
    verdict: verdictOf(isControl, uplift, counts, control),
  };
}

function verdictOf(
  isControl: boolean,
  uplift: Uplift | null,
  counts: Counts,
  control: Counts | undefined,
): Verdict {
  if (isControl) return "control";
  if (!uplift || !enough(counts) || !enough(control!)) return "not enough data";
  if (!uplift.significant) return "no significant difference";
  return uplift.absolute > 0 ? "better" : "worse";
}

/** What can (not) be concluded: a broken split first, then missing data, then how to read intervals. */
function reportNote(srm: SampleRatioCheck, enoughData: boolean, armCount: number): string {
  const notes: string[] = [];
  if (srm.flagged)
    notes.push(
      `sample ratio mismatch (p = ${srm.pValue.toExponential(1)}): exposures do not follow the weights; ` +
        "fix assignment or exposure logging before reading any result",
    );
  if (!enoughData)
    notes.push(
      `not enough data: every arm needs at least ${MIN_EXPOSURES} exposures and ${MIN_CONVERSIONS} conversions ` +
        "before a verdict",
    );
  else if (!srm.flagged)
    notes.push(
      armCount > 2
        ? "95% intervals; each variant is compared with the control separately, with no correction for multiple comparisons"
        : "95% intervals; a difference is significant when p < 0.05 and its interval excludes zero",
    );
  return notes.join("; ");
}
