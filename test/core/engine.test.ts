import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { bucket, murmur3, pickVariant } from "../../src/core/bucketing.ts";
import { bestHour, preferredChannel } from "../../src/core/channels.ts";
import { decide } from "../../src/core/decide.ts";
import { jsonForInlineScript } from "../../src/core/escape.ts";
import { addSignal, decayed, mergeIntent, topIntent } from "../../src/core/intent.ts";
import { analyzeExperiment, chiSquareSf, normalCdf, wilson } from "../../src/core/stats.ts";
import { compileJsonTemplate, compileTemplate } from "../../src/core/templates.ts";
import { compile, context, DAY, event, HOUR, MIN, NOW, stateOf } from "./helpers.ts";

const demoRules = () =>
  compile(JSON.parse(readFileSync(new URL("../../rules/northstar.rules.json", import.meta.url), "utf8")));

describe("bucketing (docs/bucketing.md)", () => {
  it("MurmurHash3 x86_32 matches the reference values", () => {
    const enc = new TextEncoder();
    expect(murmur3(enc.encode(""))).toBe(0);
    expect(murmur3(enc.encode("hello"))).toBe(0x248bfa47);
    expect(murmur3(enc.encode("The quick brown fox jumps over the lazy dog"))).toBe(0x2e4ff723);
  });

  interface Vector {
    name: string;
    seed: string;
    visitorId: string;
    bucket: number;
    variants: Array<{ id: string; weight: number }>;
    holdout: number;
    expected: unknown;
  }
  const vectors = JSON.parse(readFileSync(new URL("./vectors/bucketing.json", import.meta.url), "utf8")) as {
    cases: Vector[];
  };
  it.each(vectors.cases.map((c) => [c.name, c] as const))("vector: %s", (_n, c) => {
    expect(bucket(c.seed, c.visitorId)).toBe(c.bucket);
    expect(pickVariant(c.seed, c.visitorId, c.variants, c.holdout)).toEqual(c.expected);
  });

  it("splits 100 000 visitors by weight within statistical tolerance, holdout included", () => {
    const counts: Record<string, number> = { a: 0, b: 0, c: 0, holdout: 0 };
    const variants = [
      { id: "a", weight: 20 },
      { id: "b", weight: 30 },
      { id: "c", weight: 50 },
    ];
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const r = pickVariant("split-test", `visitor-${i}`, variants, 0.1);
      counts[r.heldOut ? "holdout" : r.variant!]! += 1;
    }
    const expected: Record<string, number> = { holdout: 0.1, a: 0.9 * 0.2, b: 0.9 * 0.3, c: 0.9 * 0.5 };
    for (const [arm, p] of Object.entries(expected)) {
      const sigma = Math.sqrt(n * p * (1 - p));
      expect(Math.abs(counts[arm]! - n * p)).toBeLessThan(4 * sigma);
    }
  });

  it("resizing the holdout never moves a visitor between variants", () => {
    const variants = [
      { id: "a", weight: 50 },
      { id: "b", weight: 50 },
    ];
    for (let i = 0; i < 2000; i++) {
      const small = pickVariant("s", `v${i}`, variants, 0.05);
      const large = pickVariant("s", `v${i}`, variants, 0.2);
      if (!small.heldOut && !large.heldOut) expect(large.variant).toBe(small.variant);
      if (small.heldOut) expect(large.heldOut).toBe(true);
    }
  });
});

describe("templates", () => {
  const render = (src: string, scope: Record<string, unknown>, mode: "html" | "json" | "text" = "html") => {
    const t = compileTemplate(src, mode);
    if (!t.ok) throw new Error(t.error);
    return t.value(scope);
  };
  it("interpolates, escapes HTML, and falls back to defaults — never 'undefined'", () => {
    expect(render('Hi {{ traits.firstName | default: "there" }}!', { traits: {} })).toBe("Hi there!");
    expect(render("Hi {{ traits.firstName }}!", { traits: { firstName: "<b>Ana</b>" } })).toBe(
      "Hi &lt;b&gt;Ana&lt;/b&gt;!",
    );
    expect(render("{{ traits.obj }}|{{ traits.missing }}", { traits: { obj: { a: 1 } } })).toBe("|");
    expect(render("{{ traits.name | upcase | truncate: 4 }}", { traits: { name: "running" } })).toBe("RUN…");
    expect(render("{{ traits.q | url_encode }}", { traits: { q: "a b&c" } }, "text")).toBe("a%20b%26c");
    expect(render('"{{ traits.q }}"', { traits: { q: 'say "hi"\n' } }, "json")).toBe('"say \\"hi\\"\\n"');
  });
  it("refuses code, prototype paths and unknown filters at compile time", () => {
    expect(compileTemplate("{{ constructor.constructor }}", "html").ok).toBe(false);
    expect(compileTemplate("{{ traits.__proto__ }}", "html").ok).toBe(false);
    expect(compileTemplate("{{ alert(1) }}", "html").ok).toBe(false);
    expect(compileTemplate("{{ traits.x | exec }}", "html").ok).toBe(false);
  });
  it("keeps value types in JSON payloads", () => {
    const t = compileJsonTemplate({
      n: "{{ traits.count }}",
      s: 'Hi {{ traits.name | default: "you" }}',
      d: '{{ traits.x | default: "none" }}',
    });
    if (!t.ok) throw new Error(t.error);
    expect(t.value({ traits: { count: 3 } })).toEqual({ n: 3, s: "Hi you", d: "none" });
  });
  it("JSON inside an inline script cannot close the script", () => {
    const out = jsonForInlineScript({ utm: "</script><script>alert(1)</script>\u2028" });
    expect(out).not.toContain("</script>");
    expect(out).not.toContain("\u2028");
    expect(JSON.parse(out)).toEqual({ utm: "</script><script>alert(1)</script>\u2028" });
  });
});

describe("intent scores", () => {
  it("halve every half-life and add up to the cap", () => {
    const s = addSignal(undefined, 8, NOW, DAY, 10);
    expect(decayed(s, NOW + DAY, DAY)).toBeCloseTo(4, 10);
    expect(decayed(s, NOW + 3 * DAY, DAY)).toBeCloseTo(1, 10);
    expect(addSignal(s, 8, NOW, DAY, 10).value).toBe(10);
    // An event arriving late counts as if it had arrived in order.
    const inOrder = addSignal(addSignal(undefined, 4, NOW - DAY, DAY, 100), 4, NOW, DAY, 100);
    const late = addSignal(addSignal(undefined, 4, NOW, DAY, 100), 4, NOW - DAY, DAY, 100);
    expect(late.value).toBeCloseTo(inOrder.value, 10);
  });
  it("picks a stable top dimension and merges two visitors within the cap", () => {
    expect(topIntent({ running: 3, hiking: 3 }).dimension).toBe("hiking");
    expect(topIntent({ running: 0 }).dimension).toBeNull();
    const merged = mergeIntent(
      { running: { value: 60, ts: NOW } },
      { running: { value: 60, ts: NOW } },
      NOW,
      { running: { halfLifeMs: DAY, cap: 100 } },
    );
    expect(merged.running?.value).toBe(100);
  });
});

describe("channels and timing", () => {
  it("prefers the channel a person actually engages with, not one lucky click", () => {
    const p = preferredChannel({
      email: { sends: 100, opens: 40, clicks: 30, lastAt: null },
      sms: { sends: 1, opens: 0, clicks: 1, lastAt: null },
    });
    expect(p.channel).toBe("email");
    expect(bestHour([0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])).toBe(8);
    expect(bestHour(new Array(24).fill(0))).toBeNull();
  });
});

describe("experiment statistics", () => {
  it("known values: normal CDF, Wilson interval, chi-square tail", () => {
    expect(normalCdf(1.959964)).toBeCloseTo(0.975, 5);
    const [lo, hi] = wilson(50, 100);
    expect(lo).toBeCloseTo(0.4038, 3);
    expect(hi).toBeCloseTo(0.5962, 3);
    expect(chiSquareSf(3.841, 1)).toBeCloseTo(0.05, 3);
  });
  it("reports uplift with an interval, and refuses a verdict on too little data", () => {
    const big = analyzeExperiment([
      { id: "control", weight: 50, exposures: 5000, conversions: 500, isControl: true },
      { id: "bold", weight: 50, exposures: 5000, conversions: 600 },
    ]);
    const bold = big.arms[1]!;
    expect(bold.uplift?.relative).toBeCloseTo(0.2, 5);
    expect(bold.uplift?.significant).toBe(true);
    expect(bold.uplift!.absoluteInterval[0]).toBeGreaterThan(0);
    const small = analyzeExperiment([
      { id: "control", weight: 50, exposures: 30, conversions: 3, isControl: true },
      { id: "bold", weight: 50, exposures: 30, conversions: 6 },
    ]);
    expect(small.enoughData).toBe(false);
    expect(small.note).toContain("not enough data");
  });
  it("flags a sample ratio mismatch", () => {
    const r = analyzeExperiment([
      { id: "control", weight: 50, exposures: 6000, conversions: 600 },
      { id: "bold", weight: 50, exposures: 4000, conversions: 400 },
    ]);
    expect(r.sampleRatioMismatch.flagged).toBe(true);
  });
});

describe("decisions a marketer would recognise", () => {
  it("the high-value repeat buyer and the six-months-silent subscriber get different treatment", async () => {
    const rules = await demoRules();
    const buyer = decide(rules, {
      visitorId: "buyer",
      now: NOW,
      traits: { firstName: "Ana", lifetimeValue: 3200 },
      state: stateOf(
        [event("purchase", 10 * DAY), event("page_view", 2 * DAY), event("page_view", MIN)],
        rules,
      ),
      context: context(),
      consent: {},
    });
    const silent = decide(rules, {
      visitorId: "silent",
      now: NOW,
      traits: {},
      state: stateOf([event("email_open", 190 * DAY, {}, "email")], rules),
      context: context({ channel: "email" }),
      consent: {},
      placements: ["email-hero"],
    });
    expect(buyer.decisions.find((d) => d.placement === "promo-banner")?.experience).toBe("vip-banner");
    expect(buyer.segments).toContain("high-value");
    expect(silent.decisions[0]?.experience).toBe("email-winback");
    expect(silent.segments).toContain("lapsed");
  });

  it("a visitor whose clicks come from SMS gets SMS as the preferred channel, and an hour to send", async () => {
    const rules = await demoRules();
    const events = [
      ...[1, 2, 3, 4].map((d) => event("email_send", d * DAY, {}, "email")),
      ...[1, 2, 3].map((d) => event("sms_send", d * DAY, {}, "sms")),
      ...[1, 2, 3].map((d) => event("sms_click", d * DAY - 2 * HOUR, {}, "sms")),
    ];
    const r = decide(rules, {
      visitorId: "v",
      now: NOW,
      traits: {},
      state: stateOf(events, rules),
      context: context({ channel: "sms" }),
      consent: {},
      placements: ["email-hero"],
    });
    expect(r.outbound?.channel).toBe("sms");
    expect(r.outbound?.hour).toBe(new Date(NOW - (DAY - 2 * HOUR)).getUTCHours());
  });

  it("the same visitor gets the same hero on web and in the app", async () => {
    const rules = await demoRules();
    for (const id of ["v-1", "v-2", "v-3", "v-4", "v-5"]) {
      const web = decide(rules, {
        visitorId: id,
        now: NOW,
        traits: {},
        state: null,
        context: context(),
        consent: {},
      });
      const app = decide(rules, {
        visitorId: id,
        now: NOW,
        traits: {},
        state: null,
        context: context({ channel: "app" }),
        consent: {},
        placements: ["home-hero"],
      });
      const w = web.decisions.find((d) => d.placement === "home-hero")!;
      expect([app.decisions[0]?.experience, app.decisions[0]?.variant]).toEqual([w.experience, w.variant]);
    }
  });

  it("holdout visitors always get the default, and assignments are sticky when weights change", async () => {
    const rules = await demoRules();
    let held = 0;
    for (let i = 0; i < 400; i++) {
      const r = decide(rules, {
        visitorId: `h${i}`,
        now: NOW,
        traits: {},
        state: null,
        context: context(),
        consent: {},
      });
      const hero = r.decisions.find((d) => d.placement === "home-hero")!;
      if (r.assignments["hero-test"] === "holdout") {
        held++;
        expect(hero.experience).toBeNull();
        expect(hero.reason).toBe("HOLDOUT");
        expect(hero.html).toBeNull();
      } else expect(hero.reason).toBe("EXPERIMENT");
    }
    expect(held).toBeGreaterThan(15);
    const sticky = decide(rules, {
      visitorId: "x",
      now: NOW,
      traits: {},
      state: { ...stateOf([]), assignments: { "hero-test": "bold" } },
      context: context(),
      consent: {},
    });
    expect(sticky.decisions.find((d) => d.placement === "home-hero")?.variant).toBe("bold");
    expect(sticky.assignments).toEqual({});
  });

  it("a frequency cap stops an experience after N exposures", async () => {
    const rules = await demoRules();
    const s = stateOf([event("page_view", MIN)]);
    s.exposures["first-visit-offer"] = [NOW - 3 * HOUR, NOW - 2 * HOUR, NOW - HOUR];
    const r = decide(rules, {
      visitorId: "v",
      now: NOW,
      traits: {},
      state: s,
      context: context(),
      consent: {},
      explain: true,
    });
    expect(r.decisions.find((d) => d.placement === "promo-banner")?.experience).toBeNull();
    expect(r.explanation?.["promo-banner"]?.find((c) => c.experience === "first-visit-offer")?.outcome).toBe(
      "capped",
    );
    s.exposures["first-visit-offer"] = [NOW - 2 * DAY, NOW - 2 * DAY, NOW - 2 * DAY];
    const later = decide(rules, {
      visitorId: "v",
      now: NOW,
      traits: {},
      state: s,
      context: context(),
      consent: {},
    });
    expect(later.decisions.find((d) => d.placement === "promo-banner")?.experience).toBe("first-visit-offer");
  });

  it("explains every candidate: which condition failed, who won", async () => {
    const rules = await demoRules();
    const r = decide(rules, {
      visitorId: "v-exp",
      now: NOW,
      traits: {},
      state: null,
      context: context(),
      consent: {},
      explain: true,
    });
    const hero = r.explanation?.["home-hero"] ?? [];
    expect(hero.find((c) => c.experience === "hero-runner")).toMatchObject({ outcome: "audience" });
    expect(hero.find((c) => c.experience === "hero-runner")?.detail).toContain("segment runner");
    expect(hero.some((c) => c.outcome === "won" || c.outcome === "held_out")).toBe(true);
    const quiet = decide(rules, {
      visitorId: "v-exp",
      now: NOW,
      traits: {},
      state: null,
      context: context(),
      consent: {},
    });
    expect(quiet.explanation).toBeNull();
  });

  it("is deterministic: the same inputs give the same decisions", async () => {
    const rules = await demoRules();
    const input = {
      visitorId: "d",
      now: NOW,
      traits: { firstName: "Jo" },
      state: stateOf([event("product_view", HOUR, { category: "hiking" })], rules),
      context: context(),
      consent: {},
    };
    expect(decide(rules, input)).toEqual(decide(rules, input));
  });

  it("names unknown placements instead of failing", async () => {
    const rules = await demoRules();
    const r = decide(rules, {
      visitorId: "v",
      now: NOW,
      traits: {},
      state: null,
      context: context({ channel: "app" }),
      consent: {},
      placements: ["home-hero", "nope"],
    });
    expect(r.unknownPlacements).toEqual(["nope"]);
    expect(r.decisions).toHaveLength(1);
  });
});
