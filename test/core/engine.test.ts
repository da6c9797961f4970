import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decide } from "../../src/core/decide.ts";
import { compile, context, DAY, event, HOUR, MIN, NOW, stateOf } from "./helpers.ts";

const demoRules = () =>
  compile(JSON.parse(readFileSync(new URL("../../rules/northstar.rules.json", import.meta.url), "utf8")));

describe("decisions a marketer would recognise", () => {
  it("the high-value repeat buyer and the four-months-silent subscriber get different treatment", async () => {
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
      state: stateOf([event("email_open", 120 * DAY, {}, "email")], rules),
      context: context({ channel: "email" }),
      consent: {},
      placements: ["email-hero"],
    });
    expect(buyer.decisions.find((d) => d.placement === "promo-banner")?.experience).toBe("vip-banner");
    expect(buyer.segments).toContain("high-value");
    expect(silent.decisions[0]?.experience).toBe("email-winback");
    expect(silent.segments).toContain("lapsing");
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
