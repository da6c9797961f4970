import { describe, expect, it } from "vitest";
import {
  analyzeExperiment,
  chiSquareSf,
  erfc,
  lnGamma,
  normalCdf,
  normalSf,
  wilson,
} from "../../src/core/stats.ts";

describe("distributions against published values", () => {
  it("normal CDF and tail", () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1.959964)).toBeCloseTo(0.975, 7);
    expect(normalCdf(-1.644854)).toBeCloseTo(0.05, 7);
    expect(normalCdf(-3)).toBeCloseTo(0.0013498980316301, 9);
    // Far tail keeps its relative precision (1 − Φ(6) ≈ 9.8659e-10), which 1 − normalCdf would lose.
    expect(normalSf(6) / 9.865876450377e-10).toBeCloseTo(1, 6);
    expect(erfc(1)).toBeCloseTo(0.157299207050285, 7);
  });
  it("log-gamma", () => {
    expect(lnGamma(1)).toBeCloseTo(0, 12);
    expect(lnGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
    expect(lnGamma(10)).toBeCloseTo(Math.log(362880), 10);
  });
  it("chi-square upper tail: critical values of the usual tables", () => {
    expect(chiSquareSf(3.841459, 1)).toBeCloseTo(0.05, 6);
    expect(chiSquareSf(10.827566, 1)).toBeCloseTo(0.001, 7);
    expect(chiSquareSf(1, 1)).toBeCloseTo(0.3173105078629, 8);
    expect(chiSquareSf(5.991465, 2)).toBeCloseTo(0.05, 6);
    expect(chiSquareSf(13.815511, 2)).toBeCloseTo(0.001, 7);
    expect(chiSquareSf(16.266236, 3)).toBeCloseTo(0.001, 7);
    expect(chiSquareSf(18.307038, 10)).toBeCloseTo(0.05, 6);
    expect(chiSquareSf(0, 3)).toBe(1);
  });
  it("Wilson interval: Newcombe (1998) worked examples", () => {
    const [a, b] = wilson(81, 263);
    expect(a).toBeCloseTo(0.2553, 4);
    expect(b).toBeCloseTo(0.3662, 4);
    const [c, d] = wilson(15, 148);
    expect(c).toBeCloseTo(0.0624, 4);
    expect(d).toBeCloseTo(0.1605, 4);
    // Zero successes still give a real upper bound, unlike the Wald interval's [0, 0].
    const [lo, hi] = wilson(0, 10);
    expect(lo).toBe(0);
    expect(hi).toBeCloseTo(0.2775, 4);
    expect(wilson(0, 0)).toEqual([0, 1]);
  });
});

describe("analyzeExperiment", () => {
  const arm = (id: string, exposures: number, conversions: number, extra: object = {}) => ({
    id,
    weight: 50,
    exposures,
    conversions,
    ...extra,
  });

  it("declares a clear winner with its uplift, intervals and p-value", () => {
    const r = analyzeExperiment([arm("control", 5000, 500, { isControl: true }), arm("bold", 5000, 600)]);
    expect(r.control).toBe("control");
    expect(r.enoughData).toBe(true);
    const [control, bold] = r.arms;
    expect(control!.verdict).toBe("control");
    expect(control!.uplift).toBeNull();
    expect(bold!.rate).toBeCloseTo(0.12, 10);
    expect(bold!.verdict).toBe("better");
    const u = bold!.uplift!;
    expect(u.relative).toBeCloseTo(0.2, 10);
    expect(u.zScore).toBeCloseTo(3.196, 3);
    expect(u.pValue).toBeCloseTo(0.001393, 5);
    expect(u.absoluteInterval[0]).toBeGreaterThan(0);
    expect(u.absoluteInterval[1]).toBeGreaterThan(0.02);
    // Delta method on log(1.2): exp(log 1.2 ± 1.96 √(0.88/600 + 0.9/500)) − 1.
    expect(u.relativeInterval![0]).toBeCloseTo(0.0728, 4);
    expect(u.relativeInterval![1]).toBeCloseTo(0.3422, 4);
    expect(r.note).not.toContain("not enough data");
  });

  it("reports a worse variant as worse, and a small difference as no significant difference", () => {
    const worse = analyzeExperiment([arm("control", 4000, 600, { isControl: true }), arm("b", 4000, 480)]);
    expect(worse.arms[1]!.verdict).toBe("worse");
    expect(worse.arms[1]!.uplift!.relative!).toBeLessThan(0);
    const flat = analyzeExperiment([arm("control", 2000, 200, { isControl: true }), arm("b", 2000, 210)]);
    expect(flat.arms[1]!.verdict).toBe("no significant difference");
    expect(flat.arms[1]!.uplift!.significant).toBe(false);
    expect(flat.arms[1]!.uplift!.absoluteInterval[0]).toBeLessThan(0);
    expect(flat.arms[1]!.uplift!.absoluteInterval[1]).toBeGreaterThan(0);
  });

  it("matches Newcombe's interval for a difference (56/70 vs 48/80: 0.0524 to 0.3339)", () => {
    const r = analyzeExperiment([
      { id: "control", weight: 1, exposures: 80, conversions: 48, isControl: true },
      { id: "b", weight: 1, exposures: 70, conversions: 56 },
    ]);
    const [lo, hi] = r.arms[1]!.uplift!.absoluteInterval;
    expect(lo).toBeCloseTo(0.0524, 4);
    expect(hi).toBeCloseTo(0.3339, 4);
  });

  it("refuses a verdict on too little data, even when the difference looks large", () => {
    const few = analyzeExperiment([arm("control", 30, 3, { isControl: true }), arm("bold", 30, 12)]);
    expect(few.enoughData).toBe(false);
    expect(few.arms[1]!.verdict).toBe("not enough data");
    expect(few.note).toContain("not enough data");
    // Plenty of exposures but under 10 conversions in the control.
    const rare = analyzeExperiment([arm("control", 5000, 4, { isControl: true }), arm("bold", 5000, 40)]);
    expect(rare.arms[1]!.verdict).toBe("not enough data");
    expect(rare.enoughData).toBe(false);
  });

  it("uses the first arm as control unless another is marked, e.g. the holdout", () => {
    const byDefault = analyzeExperiment([arm("a", 1000, 100), arm("b", 1000, 150)]);
    expect(byDefault.control).toBe("a");
    const vsHoldout = analyzeExperiment([
      arm("a", 1000, 100),
      arm("holdout", 1000, 150, { isControl: true }),
    ]);
    expect(vsHoldout.control).toBe("holdout");
    expect(vsHoldout.arms[0]!.uplift!.relative).toBeCloseTo(-1 / 3, 10);
    expect(vsHoldout.arms[1]!.uplift).toBeNull();
  });

  it("flags a sample ratio mismatch, and not a chance imbalance", () => {
    const srm = analyzeExperiment([arm("control", 6000, 600), arm("bold", 4000, 400)]);
    expect(srm.sampleRatioMismatch.flagged).toBe(true);
    expect(srm.sampleRatioMismatch.pValue).toBeLessThan(1e-50);
    expect(srm.note).toContain("sample ratio mismatch");
    // 5050/4950 is well within chance for a 50/50 split (χ² = 1, p ≈ 0.32).
    const fine = analyzeExperiment([arm("control", 5050, 500), arm("bold", 4950, 500)]);
    expect(fine.sampleRatioMismatch.chiSquare).toBeCloseTo(1, 10);
    expect(fine.sampleRatioMismatch.pValue).toBeCloseTo(0.3173, 4);
    expect(fine.sampleRatioMismatch.flagged).toBe(false);
    // Unequal planned weights are honoured: 90/10 observed for a 90/10 plan is fine.
    const planned = analyzeExperiment([
      { id: "a", weight: 90, exposures: 9000, conversions: 900 },
      { id: "b", weight: 10, exposures: 1000, conversions: 100 },
    ]);
    expect(planned.sampleRatioMismatch.flagged).toBe(false);
    expect(planned.arms[1]!.expectedShare).toBeCloseTo(0.1, 10);
  });

  it("flags traffic reaching an arm planned at weight 0", () => {
    const r = analyzeExperiment([
      { id: "a", weight: 100, exposures: 1000, conversions: 100 },
      { id: "off", weight: 0, exposures: 3, conversions: 0 },
    ]);
    expect(r.sampleRatioMismatch.flagged).toBe(true);
  });

  it("never reports impossible rates or NaN from broken counts", () => {
    const r = analyzeExperiment([
      arm("control", 0, 0, { isControl: true }),
      arm("b", 10, 25),
      arm("c", Number.NaN, -1),
    ]);
    expect(r.arms[1]!.rate).toBe(1);
    expect(r.arms[2]!.exposures).toBe(0);
    expect(r.arms[0]!.interval).toEqual([0, 1]);
    expect(r.arms.every((a) => a.uplift === null)).toBe(true);
    for (const a of r.arms) expect(a.interval.every(Number.isFinite)).toBe(true);
    expect(Number.isNaN(r.sampleRatioMismatch.pValue)).toBe(false);
    expect(analyzeExperiment([])).toMatchObject({ control: null, enoughData: false, arms: [] });
  });

  it("gives no relative interval when an arm has no conversion, rather than an infinite one", () => {
    const r = analyzeExperiment([arm("control", 500, 0, { isControl: true }), arm("b", 500, 20)]);
    expect(r.arms[1]!.uplift!.relative).toBeNull();
    expect(r.arms[1]!.uplift!.relativeInterval).toBeNull();
    expect(Number.isFinite(r.arms[1]!.uplift!.pValue)).toBe(true);
  });
});
