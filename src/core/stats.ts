/**
 * Honest A/B statistics from unique exposures and conversions per arm: Wilson intervals for each
 * rate, the difference against control with Newcombe's interval (hybrid Wilson score), a
 * two-proportion z-test, a sample-ratio-mismatch check, and no verdict on too little data.
 */

export interface ArmInput {
  readonly id: string;
  readonly weight: number;
  readonly exposures: number;
  readonly conversions: number;
  readonly isControl?: boolean;
}

export interface ArmReport {
  readonly id: string;
  readonly exposures: number;
  readonly conversions: number;
  readonly rate: number;
  readonly interval: readonly [number, number];
  /** Versus control; null for the control arm. */
  readonly uplift: {
    readonly absolute: number;
    readonly absoluteInterval: readonly [number, number];
    readonly relative: number | null;
    readonly pValue: number;
    readonly significant: boolean;
  } | null;
}

export interface ExperimentReport {
  readonly arms: readonly ArmReport[];
  readonly control: string | null;
  readonly sampleRatioMismatch: { readonly pValue: number; readonly flagged: boolean };
  readonly enoughData: boolean;
  readonly note: string;
}

const Z95 = 1.959963984540054;

/** Standard normal CDF via erfc (W. J. Cody's rational approximation through Numerical Recipes' erfc). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
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
  return x >= 0 ? 1 - r / 2 : r / 2;
}

export function wilson(successes: number, n: number, z = Z95): [number, number] {
  if (n <= 0) return [0, 1];
  const p = successes / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** Regularized lower incomplete gamma P(a, x), by series or continued fraction (Numerical Recipes). */
function gammaP(a: number, x: number): number {
  if (x <= 0) return 0;
  const lnGammaA = lnGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 500; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-14) break;
    }
    return sum * Math.exp(-x + a * Math.log(x) - lnGammaA);
  }
  let b = x + 1 - a;
  let c = 1 / 1e-300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 500; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-14) break;
  }
  return 1 - Math.exp(-x + a * Math.log(x) - lnGammaA) * h;
}

function lnGamma(z: number): number {
  // Lanczos approximation, g = 7.
  const g = 7;
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - lnGamma(1 - z);
  const x = z - 1;
  let a = c[0]!;
  const t = x + g + 0.5;
  for (let i = 1; i < g + 2; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Upper tail of the chi-square distribution with k degrees of freedom. */
export function chiSquareSf(x: number, k: number): number {
  return 1 - gammaP(k / 2, x / 2);
}

export function analyzeExperiment(arms: readonly ArmInput[]): ExperimentReport {
  const control = arms.find((a) => a.isControl) ?? arms[0];
  const reports: ArmReport[] = arms.map((arm) => {
    const rate = arm.exposures > 0 ? arm.conversions / arm.exposures : 0;
    const interval = wilson(arm.conversions, arm.exposures);
    if (!control || arm === control || control.exposures === 0 || arm.exposures === 0) {
      return {
        id: arm.id,
        exposures: arm.exposures,
        conversions: arm.conversions,
        rate,
        interval,
        uplift: null,
      };
    }
    const p0 = control.conversions / control.exposures;
    const [l0, u0] = wilson(control.conversions, control.exposures);
    const [l1, u1] = interval;
    const diff = rate - p0;
    // Newcombe (1998) method 10: the difference's interval from the two Wilson intervals.
    const lower = diff - Math.sqrt((rate - l1) ** 2 + (u0 - p0) ** 2);
    const upper = diff + Math.sqrt((u1 - rate) ** 2 + (p0 - l0) ** 2);
    const pooled = (arm.conversions + control.conversions) / (arm.exposures + control.exposures);
    const se = Math.sqrt(pooled * (1 - pooled) * (1 / arm.exposures + 1 / control.exposures));
    const pValue = se > 0 ? 2 * (1 - normalCdf(Math.abs(diff) / se)) : 1;
    return {
      id: arm.id,
      exposures: arm.exposures,
      conversions: arm.conversions,
      rate,
      interval,
      uplift: {
        absolute: diff,
        absoluteInterval: [lower, upper],
        relative: p0 > 0 ? diff / p0 : null,
        pValue,
        significant: pValue < 0.05 && (lower > 0 || upper < 0),
      },
    };
  });
  const total = arms.reduce((s, a) => s + a.exposures, 0);
  const weightSum = arms.reduce((s, a) => s + a.weight, 0);
  let chi = 0;
  if (total > 0 && weightSum > 0) {
    for (const a of arms) {
      const expected = (total * a.weight) / weightSum;
      if (expected > 0) chi += (a.exposures - expected) ** 2 / expected;
    }
  }
  const srmP = total > 0 && arms.length > 1 ? chiSquareSf(chi, arms.length - 1) : 1;
  const enoughData =
    arms.every((a) => a.exposures >= 100) && arms.reduce((s, a) => s + a.conversions, 0) >= 10;
  const flagged = srmP < 0.001;
  const note = flagged
    ? "sample ratio mismatch: the split differs from the weights; check assignment before reading results"
    : enoughData
      ? "95% intervals; a difference is significant when its interval excludes zero"
      : "not enough data yet: at least 100 exposures per arm and 10 conversions in all before any verdict";
  return {
    arms: reports,
    control: control?.id ?? null,
    sampleRatioMismatch: { pValue: srmP, flagged },
    enoughData,
    note,
  };
}
