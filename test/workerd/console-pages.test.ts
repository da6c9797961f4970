import { describe, expect, it } from "vitest";
import type { ArmView, ExperimentView } from "../../src/console/data.ts";
import { experimentPage } from "../../src/console/pages/experiments.ts";

const CTX = { base: "/_ns/console", csrf: "token" };

function arm(id: string, exposures: number, conversions: number, extra: Partial<ArmView> = {}): ArmView {
  const rate = conversions / exposures;
  return {
    id,
    isControl: id === "control",
    weight: 50,
    exposures,
    conversions,
    rate,
    interval: [rate * 0.8, rate * 1.2],
    observedShare: 0.5,
    expectedShare: 0.5,
    uplift:
      id === "control"
        ? null
        : {
            absolute: 0.02,
            absoluteInterval: [-0.01, 0.05],
            relative: 0.2,
            relativeInterval: [-0.1, 0.5],
            pValue: 0.2,
            significant: false,
          },
    verdict: id === "control" ? "control" : "no significant difference",
    ...extra,
  };
}

function view(extra: Partial<ExperimentView> = {}): ExperimentView {
  return {
    experiment: "hero-test",
    goal: "add_to_cart",
    rulesVersion: "v1",
    holdout: null,
    report: {
      arms: [arm("control", 500, 50), arm("bold", 480, 58)],
      control: "control",
      sampleRatioMismatch: { chiSquare: 0.4, pValue: 0.5, flagged: false },
      enoughData: true,
      note: "",
    },
    ...extra,
  };
}

describe("the experiment page", () => {
  it("draws each arm's visitors, conversions and uplift interval as the API reports them", () => {
    const text = experimentPage(CTX, "Experiment", { ok: true, value: view() }).text;
    expect(text).toContain('data-arm="bold" data-exposures="480" data-conversions="58"');
    expect(text).toContain("+20.0% [-10.0%, +50.0%]");
    expect(text).toContain("Sample ratio OK");
    expect(text).not.toContain("Value / visitor");
  });

  it("flags a sample-ratio mismatch", () => {
    const flagged = view();
    const report = {
      ...flagged.report,
      sampleRatioMismatch: { chiSquare: 30, pValue: 0.00001, flagged: true },
    };
    const text = experimentPage(CTX, "Experiment", { ok: true, value: { ...flagged, report } }).text;
    expect(text).toContain("Sample ratio mismatch");
  });

  it("draws value per visitor, one section per goal and visitors per day when the API serves them", () => {
    const valued = view().report;
    const report = {
      ...valued,
      arms: valued.arms.map((a) => ({
        ...a,
        valuePerVisitor: 4.5,
        valueInterval: [3.25, 5.75] as [number, number],
      })),
    };
    const text = experimentPage(CTX, "Experiment", {
      ok: true,
      value: view({
        goals: [
          { goal: "add_to_cart", report },
          { goal: "purchase", report },
        ],
        daily: [
          { date: "2026-11-27", arms: { control: 10, bold: 12 } },
          { date: "2026-11-28", arms: { control: 14, bold: 9 } },
        ],
      }),
    }).text;
    expect(text).toContain("4.50 [3.25, 5.75]");
    expect(text).toContain('data-goal="purchase"');
    expect(text).toMatch(/<polyline class="series s1" data-arm="bold" points="150,[\d.]+ 640,[\d.]+"/);
    expect(text).not.toContain("serves no daily series");
  });
});
