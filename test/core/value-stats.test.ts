import { describe, expect, it } from "vitest";
import { analyzeGoal } from "../../src/core/goal-stats.ts";
import {
  compareMeans,
  incompleteBeta,
  meanEstimate,
  skewness,
  studentTQuantile,
  studentTSf,
  type ValueMoments,
} from "../../src/core/value-stats.ts";

/** The sufficient statistics of a list of per-visitor values. */
const momentsOf = (values: readonly number[]): ValueMoments => ({
  n: values.length,
  sum: values.reduce((s, v) => s + v, 0),
  sumSquares: values.reduce((s, v) => s + v * v, 0),
  sumCubes: values.reduce((s, v) => s + v ** 3, 0),
});

/** The sufficient statistics of a sample known by its size, mean and standard deviation (n − 1). */
const momentsFrom = (n: number, mean: number, sd: number): ValueMoments => ({
  n,
  sum: n * mean,
  sumSquares: (n - 1) * sd * sd + n * mean * mean,
  sumCubes: 0,
});

describe("Student's t against published tables", () => {
  it("the incomplete beta function: I_0.5(2, 3) = 11/16 exactly", () => {
    expect(incompleteBeta(0.5, 2, 3)).toBeCloseTo(11 / 16, 12);
    expect(incompleteBeta(0.3, 1, 1)).toBeCloseTo(0.3, 12);
  });

  it("critical values of the t table (NIST/SEMATECH e-Handbook 1.4.2.3): 12.706, 2.776, 2.228, 2.042", () => {
    expect(studentTQuantile(0.025, 1)).toBeCloseTo(12.7062, 3);
    expect(studentTQuantile(0.025, 4)).toBeCloseTo(2.7764, 4);
    expect(studentTQuantile(0.025, 10)).toBeCloseTo(2.2281, 4);
    expect(studentTQuantile(0.025, 30)).toBeCloseTo(2.0423, 4);
    expect(studentTQuantile(0.05, 5)).toBeCloseTo(2.015, 3);
    expect(studentTSf(2.015048, 5)).toBeCloseTo(0.05, 6);
    expect(studentTSf(0, 7)).toBeCloseTo(0.5, 12);
    expect(studentTSf(-2.228139, 10)).toBeCloseTo(0.975, 6);
  });
});

describe("value per visitor", () => {
  it("an arm's mean with its t interval: 1..5 gives 3 ± 2.776 · 0.7071", () => {
    const estimate = meanEstimate(momentsOf([1, 2, 3, 4, 5]));
    expect(estimate.mean).toBe(3);
    expect(estimate.interval![0]).toBeCloseTo(3 - 2.776445 * Math.sqrt(0.5), 5);
    expect(estimate.interval![1]).toBeCloseTo(3 + 2.776445 * Math.sqrt(0.5), 5);
  });

  it("skewness of revenue-like values, and Cochran's rule refusing a small skewed sample", () => {
    // 0, 0, 0, 0, 10: mean 2, m2 = 16, m3 = 96, g1 = 96 / 64 = 1.5.
    const skewed = momentsOf([0, 0, 0, 0, 10]);
    expect(skewness(skewed)).toBeCloseTo(1.5, 12);
    expect(meanEstimate(skewed).normalApproximationOk).toBe(false); // 5 ≤ 25 · 1.5²
    expect(skewness(momentsOf([1, 2, 3, 4, 5]))).toBeCloseTo(0, 12);
    expect(meanEstimate(momentsOf([1, 2, 3, 4, 5])).normalApproximationOk).toBe(true);
  });

  it("matches the NIST/SEMATECH e-Handbook's Welch test (1.3.5.3, AUTO83B: T = −12.94627, ν = 136.8750)", () => {
    // US cars: n = 249, mean 20.14458 mpg, sd 6.41470; Japanese cars: n = 79, mean 30.48101, sd 6.10771.
    const us = momentsFrom(249, 20.14458, 6.4147);
    const japan = momentsFrom(79, 30.48101, 6.10771);
    const c = compareMeans(us, japan)!;
    expect(c.absolute).toBeCloseTo(-10.33643, 5);
    expect(c.tScore).toBeCloseTo(-12.94627, 4);
    expect(c.degreesOfFreedom!).toBeCloseTo(136.875, 3);
    // t(0.975, 136.875) = 1.97745; se = 0.798410.
    expect(c.absoluteInterval[0]).toBeCloseTo(-11.91524, 4);
    expect(c.absoluteInterval[1]).toBeCloseTo(-8.75762, 4);
    expect(c.pValue).toBeLessThan(1e-24);
    // Delta method on log(m1 / m0): se² = v1 / m1² + v0 / m0².
    expect(c.relative!).toBeCloseTo(20.14458 / 30.48101 - 1, 10);
    expect(c.relativeInterval![0]).toBeCloseTo(-0.37716, 4);
    expect(c.relativeInterval![1]).toBeCloseTo(-0.29873, 4);
  });

  it("no interval from fewer than two visitors, and no relative uplift over a control worth nothing", () => {
    expect(meanEstimate(momentsOf([4])).interval).toBeNull();
    expect(compareMeans(momentsOf([4]), momentsOf([1, 2]))).toBeNull();
    const overNothing = compareMeans(momentsOf([0, 10, 0, 5]), momentsOf([0, 0, 0, 0]))!;
    expect(overNothing.relative).toBeNull();
    expect(overNothing.relativeInterval).toBeNull();
    const flat = compareMeans(momentsOf([0, 0]), momentsOf([0, 0, 0]))!;
    expect(flat).toMatchObject({ absolute: 0, pValue: 1, degreesOfFreedom: null, significant: false });
  });
});

describe("analyzeGoal", () => {
  const visitors = (n: number, converters: number, order: number): ValueMoments =>
    momentsOf([...new Array<number>(n - converters).fill(0), ...new Array<number>(converters).fill(order)]);

  it("reports rate and value per visitor per arm, the holdout among them, each against the control", () => {
    const report = analyzeGoal([
      {
        id: "control",
        weight: 45,
        isControl: true,
        visitors: 1000,
        conversions: 50,
        value: visitors(1000, 50, 80),
      },
      { id: "bold", weight: 45, visitors: 1000, conversions: 80, value: visitors(1000, 80, 80) },
      {
        id: "holdout",
        weight: 10,
        isHoldout: true,
        visitors: 220,
        conversions: 9,
        value: visitors(220, 9, 80),
      },
    ]);
    const [control, bold, holdout] = report.arms;
    expect(control!.value.mean).toBe(4);
    expect(bold!.value.mean).toBeCloseTo(6.4, 10);
    expect(bold!.value.total).toBe(6400);
    expect(bold!.valueUplift!.absolute).toBeCloseTo(2.4, 10);
    expect(bold!.valueUplift!.absoluteInterval[0]).toBeGreaterThan(0);
    expect(bold!.valueUplift!.relative).toBeCloseTo(0.6, 10);
    expect(bold!.verdict).toBe("better");
    expect(holdout!.isHoldout).toBe(true);
    expect(holdout!.expectedShare).toBeCloseTo(0.1, 10);
    expect(holdout!.uplift).not.toBeNull();
    expect(control!.valueUplift).toBeNull();
    // 1000 / 1000 / 220 of 2220 against 45 / 45 / 10: within chance.
    expect(report.sampleRatioMismatch.flagged).toBe(false);
  });

  it("flags a split that does not follow the planned shares, the holdout included", () => {
    const report = analyzeGoal([
      {
        id: "control",
        weight: 45,
        isControl: true,
        visitors: 1000,
        conversions: 0,
        value: visitors(1000, 0, 0),
      },
      { id: "bold", weight: 45, visitors: 1000, conversions: 0, value: visitors(1000, 0, 0) },
      {
        id: "holdout",
        weight: 10,
        isHoldout: true,
        visitors: 600,
        conversions: 0,
        value: visitors(600, 0, 0),
      },
    ]);
    expect(report.sampleRatioMismatch.flagged).toBe(true);
    expect(report.note).toContain("sample ratio mismatch");
  });
});
