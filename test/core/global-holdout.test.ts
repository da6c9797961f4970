import { describe, expect, it } from "vitest";
import { decide } from "../../src/core/decide.ts";
import { parseRules } from "../../src/rules/index.ts";
import { compile, context, NOW } from "./helpers.ts";

/** Two placements, each with an experience everyone qualifies for, and a 20% program-wide control group. */
const doc = {
  version: "global-holdout-test",
  settings: { globalHoldout: { fraction: 0.2, seed: "program-2026", goal: "purchase" } },
  placements: {
    hero: { selector: "#hero", pages: ["/"], default: { html: "<h1>Site hero</h1>" } },
    banner: { selector: "#banner", pages: ["/"] },
  },
  experiences: [
    { id: "hero-for-all", placement: "hero", content: { html: "<h1>For you</h1>" } },
    { id: "banner-for-all", placement: "banner", content: { html: "<p>Offer</p>" } },
  ],
};
const rules = await compile(doc);
const run = (visitorId: string, assignments?: Record<string, string>) =>
  decide(rules, {
    visitorId,
    now: NOW,
    traits: {},
    state: assignments ? ({ assignments } as never) : null,
    context: context(),
    consent: {},
    explain: true,
  });

describe("the global holdout", () => {
  it("holds out its share of visitors from every placement, and personalizes everyone else", () => {
    let heldOut = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const result = run(`visitor-${i}`);
      const [hero, banner] = result.decisions;
      const group = result.assignments["global-holdout"];
      if (group === "holdout") {
        heldOut++;
        // Every placement shows its default, and the explanation says why.
        expect(hero).toMatchObject({ experience: null, html: "<h1>Site hero</h1>", reason: "HOLDOUT" });
        expect(banner).toMatchObject({ experience: null, html: null, reason: "HOLDOUT" });
        expect(result.explanation?.hero?.[0]).toMatchObject({ outcome: "held_out" });
      } else {
        expect(group).toBe("personalized");
        expect(hero?.experience).toBe("hero-for-all");
        expect(banner?.experience).toBe("banner-for-all");
      }
    }
    // 20% ± 5 standard deviations of a binomial over 20 000 visitors.
    const sd = Math.sqrt(n * 0.2 * 0.8);
    expect(Math.abs(heldOut - n * 0.2)).toBeLessThan(5 * sd);
    // 20,000 decisions: seconds on a busy 2-core machine, not a speed check.
  }, 60_000);

  it("is sticky: a stored group wins over the bucket, and only a new visitor's group is handed back to store", () => {
    const fresh = run("visitor-7");
    const stored = fresh.assignments["global-holdout"]!;
    const other = stored === "holdout" ? "personalized" : "holdout";
    const returning = run("visitor-7", { "global-holdout": other });
    expect(returning.assignments["global-holdout"]).toBeUndefined();
    expect(returning.decisions[0]?.experience).toBe(other === "holdout" ? null : "hero-for-all");
  });

  it("reserves its id: an experiment named global-holdout is refused", () => {
    const parsed = parseRules({
      ...doc,
      experiments: {
        "global-holdout": { seed: "x", goal: "purchase", variants: [{ id: "a", weight: 100 }] },
      },
    });
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.errors.map((e) => e.path)).toContain("experiments.global-holdout");
  });
});
