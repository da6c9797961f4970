import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type DecisionInput, type DecisionResult, decide } from "../../src/core/index.ts";
import type { VisitorEvent } from "../../src/core/model.ts";
import { recordExposure } from "../../src/core/visitor-state.ts";
import type { CompiledRules } from "../../src/rules/index.ts";
import { compile, context, DAY, event, HOUR, MIN, NOW, stateOf } from "./helpers.ts";

/**
 * decide() on the demo shop's rules (rules/northstar.rules.json), in scenarios a marketer
 * recognises. State is built from events by the same code the visitor's Durable Object runs.
 */
const demo = JSON.parse(readFileSync(new URL("../../rules/northstar.rules.json", import.meta.url), "utf8"));
const rules: CompiledRules = await compile(demo);

function run(over: Partial<DecisionInput> & { events?: VisitorEvent[] }): DecisionResult {
  const { events, ...rest } = over;
  return decide(rules, {
    visitorId: "visitor-1",
    now: NOW,
    traits: {},
    state: events ? stateOf(events, rules) : null,
    context: context(),
    consent: {},
    ...rest,
  });
}

const by = (r: DecisionResult) => Object.fromEntries(r.decisions.map((d) => [d.placement, d]));

describe("decisions a marketer recognises", () => {
  it("a high-value repeat buyer and a six-months-silent subscriber get different treatment", () => {
    const buyer = run({
      traits: { firstName: "Ana", lifetimeValue: 2400 },
      events: [event("purchase", 3 * DAY, { value: 300 }), event("page_view", 1 * MIN, { path: "/" })],
    });
    const silent = run({
      context: context({ channel: "email" }),
      placements: ["email-hero"],
      events: [event("email_open", 200 * DAY, {}, "email")],
    });
    expect(by(buyer)["promo-banner"]?.experience).toBe("vip-banner");
    expect(by(buyer)["home-hero"]?.experience).toBe("hero-welcome-back");
    expect(buyer.segments).toContain("high-value");
    // Six months without a sign of life: outbound is paused (the sender skips the send).
    expect(silent.segments).toContain("lapsed");
    expect(by(silent)["email-hero"]).toMatchObject({ experience: "email-pause", html: null });
    expect(by(silent)["email-hero"]?.json).toEqual({ pause: true, reason: "inactive-180d" });
  });

  it("without the segment list asked for, the same decisions are made and no segments are listed", () => {
    const visitor = {
      traits: { firstName: "Ana", lifetimeValue: 2400 },
      events: [event("purchase", 3 * DAY, { value: 300 }), event("page_view", 1 * MIN, { path: "/" })],
    };
    const listed = run(visitor);
    const page = run({ ...visitor, segments: false });
    expect(page.decisions).toEqual(listed.decisions);
    expect(listed.segments).toContain("high-value");
    expect(page.segments).toEqual([]);
  });

  it("inactivity: the win-back offer from 60 days, outbound paused after 180, active again on a click", () => {
    const email = (events: VisitorEvent[]) =>
      by(run({ context: context({ channel: "email" }), placements: ["email-hero"], events }))["email-hero"]!;
    expect(email([event("page_view", 30 * DAY, { path: "/" })])).toMatchObject({ experience: null });
    expect(email([event("page_view", 60 * DAY, { path: "/" })]).json).toMatchObject({ code: "BACK15" });
    expect(email([event("page_view", 179 * DAY, { path: "/" })]).experience).toBe("email-winback");
    expect(email([event("page_view", 180 * DAY, { path: "/" })]).json).toMatchObject({ pause: true });
    const clicked = [event("email_open", 300 * DAY, {}, "email"), event("email_click", DAY, {}, "email")];
    expect(email(clicked)).toMatchObject({ experience: null, reason: "DEFAULT" });
  });

  it("browse abandonment: a product viewed and left shows a reminder on the web and by email", () => {
    const viewed = (ago: number, extra: VisitorEvent[] = []) => [
      event("product_view", ago, { category: "hiking" }),
      ...extra,
    ];
    expect(by(run({ events: viewed(10 * MIN) }))["promo-banner"]?.experience).toBe("first-visit-offer");
    const web = by(run({ events: viewed(30 * MIN) }))["promo-banner"]!;
    expect(web.experience).toBe("browse-reminder");
    expect(web.html).toContain('href="/hiking"');
    const mail = by(
      run({
        traits: { firstName: "Ana" },
        events: viewed(3 * HOUR),
        context: context({ channel: "email" }),
        placements: ["email-hero"],
      }),
    )["email-hero"]!;
    expect(mail).toMatchObject({ experience: "email-browse-abandon", json: { cta: "/hiking" } });
    // Added to the cart: that is cart abandonment, not browse abandonment.
    const carted = by(
      run({ events: viewed(30 * MIN, [event("add_to_cart", 25 * MIN, { category: "hiking" })]) }),
    );
    expect(carted["promo-banner"]?.experience).toBe("cart-reminder");
  });

  it("cart abandonment shows only after the silence window, and stops after the purchase", () => {
    const cart = [
      event("page_view", 3 * HOUR, { path: "/" }),
      event("add_to_cart", 0, { category: "running" }),
    ];
    const at = (minutes: number, extra: VisitorEvent[] = []) =>
      decide(rules, {
        visitorId: "visitor-1",
        now: NOW + minutes * MIN,
        traits: {},
        state: stateOf([...cart, ...extra], rules),
        context: context({ path: "/cart" }),
        consent: {},
      });
    expect(by(at(1))["promo-banner"]?.experience).not.toBe("cart-reminder");
    expect(by(at(3))["promo-banner"]).toMatchObject({ experience: "cart-reminder", reason: "TARGET_MATCH" });
    const bought = [{ ...event("purchase", 0, { value: 90 }), ts: NOW + 4 * MIN }];
    expect(by(at(10, bought))["promo-banner"]?.experience).not.toBe("cart-reminder");
  });

  it("a visitor whose clicks come from SMS gets SMS as the preferred channel, and an hour to send", () => {
    // Twenty emails sent, four opened (13:00 UTC), none clicked; four texts sent, three clicked (09:00).
    const events = [
      ...Array.from({ length: 20 }, (_, d) => event("email_send", (d + 1) * DAY, {}, "email")),
      ...[1, 2, 3, 4].map((d) => event("email_open", d * DAY - HOUR, {}, "email")),
      ...[1, 2, 3, 4].map((d) => event("sms_send", d * DAY + 4 * HOUR, {}, "sms")),
      ...[1, 2, 3].map((d) => event("sms_click", d * DAY + 3 * HOUR, {}, "sms")),
    ];
    const state = stateOf(events, rules);
    const r = run({ state, context: context({ channel: "sms" }), placements: ["email-hero"] });
    expect(r.outbound?.channel).toBe("sms");
    // NOW is 12:00 UTC. Overall they engage most at 13:00 (email opens), but texts get clicked at
    // 09:00: the hour to send the next text is the text channel's own.
    expect(r.outbound?.hour).toBe(9);
    expect(run({ state, placements: [] }).outbound).toBeNull();
  });

  it("the same visitor gets the same hero on the web and in the app", () => {
    for (let i = 0; i < 30; i++) {
      const visitorId = `same-${i}`;
      const web = by(run({ visitorId }))["home-hero"]!;
      const app = by(run({ visitorId, context: context({ channel: "app" }), placements: ["home-hero"] }))[
        "home-hero"
      ]!;
      expect([app.experience, app.variant, app.reason]).toEqual([web.experience, web.variant, web.reason]);
      if (app.reason === "EXPERIMENT") expect(app.json).toMatchObject({ cta: "/running" });
    }
  });

  it("holdout visitors always get the default, whatever else they do", () => {
    let heldOut = 0;
    for (let i = 0; i < 400; i++) {
      const r = run({ visitorId: `holdout-${i}`, placements: ["home-hero"] });
      const hero = by(r)["home-hero"]!;
      if (r.assignments["hero-test"] !== "holdout") continue;
      heldOut++;
      expect(hero).toMatchObject({ experience: null, variant: null, reason: "HOLDOUT", html: null });
      // Sticky: the same visitor, later, with the holdout stored, is still held out.
      const later = run({
        visitorId: `holdout-${i}`,
        placements: ["home-hero"],
        state: { ...stateOf([event("page_view", HOUR)], rules), assignments: { "hero-test": "holdout" } },
      });
      expect(by(later)["home-hero"]?.reason).toBe("HOLDOUT");
      expect(later.assignments).toEqual({});
    }
    // 10% holdout: about 40 of 400.
    expect(heldOut).toBeGreaterThan(20);
    expect(heldOut).toBeLessThan(65);
  });

  it("a frequency cap stops an experience after N exposures (first-visit offer: 3 a day)", () => {
    const state = stateOf([], rules);
    const shown: Array<string | null> = [];
    for (let i = 0; i < 5; i++) {
      const now = NOW + i * HOUR;
      const r = decide(rules, { visitorId: "v", now, traits: {}, state, context: context(), consent: {} });
      const banner = by(r)["promo-banner"]!;
      shown.push(banner.experience);
      for (const x of r.exposures) if (x.capped) recordExposure(state, x.experience, now);
    }
    expect(shown).toEqual(["first-visit-offer", "first-visit-offer", "first-visit-offer", null, null]);
    // A day later the cap has room again.
    const next = decide(rules, {
      visitorId: "v",
      now: NOW + 2 * DAY,
      traits: {},
      state,
      context: context(),
      consent: {},
    });
    expect(by(next)["promo-banner"]?.experience).toBe("first-visit-offer");
  });

  it("a returning customer is welcomed by name, escaped", () => {
    const r = run({
      traits: { firstName: '<img src=x onerror="alert(1)">' },
      events: [event("page_view", 3 * DAY, { path: "/" }), event("page_view", MIN, { path: "/" })],
    });
    const hero = by(r)["home-hero"]!;
    expect(hero.experience).toBe("hero-welcome-back");
    expect(hero.html).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
    expect(hero.html).not.toContain("<img");
  });
});

describe("experiment assignments over rule versions", () => {
  const hero = (r: DecisionResult) => by(r)["home-hero"]!;
  const stored = (variant: string) => ({
    ...stateOf([event("page_view", HOUR)], rules),
    assignments: { "hero-test": variant },
  });

  it("a stored variant the experiment no longer has is bucketed again, shown with content, and replaced", () => {
    let shown = 0;
    for (let i = 0; i < 40; i++) {
      const visitorId = `gone-${i}`;
      const r = run({ visitorId, placements: ["home-hero"], state: stored("gone") });
      const fresh = run({ visitorId, placements: ["home-hero"] });
      // The same variant (or holdout) a new visitor with this id gets, never an empty experience.
      expect([hero(r).variant, hero(r).reason]).toEqual([hero(fresh).variant, hero(fresh).reason]);
      expect(r.assignments["hero-test"]).toBe(fresh.assignments["hero-test"]);
      expect(r.replacedAssignments).toEqual({ "hero-test": "gone" });
      if (hero(r).reason === "EXPERIMENT") {
        shown++;
        expect(hero(r).html).toMatch(/Gear for every trail|Go further this weekend/);
      } else expect(hero(r)).toMatchObject({ reason: "HOLDOUT", experience: null });
    }
    expect(shown).toBeGreaterThan(20);
    // A current variant, or the holdout, is kept and nothing is handed back to store.
    for (const v of ["bold", "holdout"]) {
      const kept = run({ placements: ["home-hero"], state: stored(v) });
      expect(kept.assignments).toEqual({});
      expect(kept.replacedAssignments).toEqual({});
    }
  });

  it("weights moved to 100/0: assigned visitors keep their variant, new visitors all get the 100", async () => {
    const doc = structuredClone(demo);
    doc.experiments["hero-test"].variants = [
      { id: "control", weight: 100 },
      { id: "bold", weight: 0 },
    ];
    const shifted = await compile(doc);
    const decideOn = (visitorId: string, state: DecisionInput["state"]) =>
      decide(shifted, {
        visitorId,
        now: NOW,
        traits: {},
        state,
        context: context(),
        consent: {},
        placements: ["home-hero"],
      });
    const sticky = decideOn("visitor-1", stored("bold"));
    expect(hero(sticky)).toMatchObject({ variant: "bold", reason: "EXPERIMENT" });
    expect(hero(sticky).html).toContain("Go further this weekend");
    expect(sticky.assignments).toEqual({});
    const variants = new Set<string | null>();
    for (let i = 0; i < 100; i++) {
      const r = decideOn(`newcomer-${i}`, null);
      if (hero(r).reason !== "HOLDOUT") variants.add(hero(r).variant);
    }
    expect([...variants]).toEqual(["control"]);
  });
});

describe("consent, explanations and edges", () => {
  it("without consent for personalization: only the request counts, and no assignment is handed back", () => {
    const r = run({
      consent: { personalization: false },
      traits: { firstName: "Ana", lifetimeValue: 9000 },
      events: [event("add_to_cart", 10 * MIN, { category: "running" })],
    });
    expect(r.segments).toEqual([]);
    expect(r.intent).toEqual({ top: null, scores: {} });
    expect(r.assignments).toEqual({});
    expect(by(r)["promo-banner"]?.experience).toBe("first-visit-offer");
  });

  it("explains every candidate — which condition failed, who won — only when asked", () => {
    const events = [
      event("product_view", 5 * MIN, { category: "hiking" }),
      event("product_view", 4 * MIN, { category: "hiking" }),
    ];
    expect(run({ events }).explanation).toBeNull();
    const r = run({ events, explain: true, traits: { lifetimeValue: 5 } });
    const hero = r.explanation?.["home-hero"] ?? [];
    expect(hero.find((c) => c.experience === "hero-hiker")?.outcome).toBe("won");
    expect(hero.find((c) => c.experience === "hero-runner")).toMatchObject({ outcome: "audience" });
    expect(hero.find((c) => c.experience === "hero-runner")?.detail).toMatch(/segments\.runner/);
    expect(hero.find((c) => c.experience === "hero-ab")?.outcome).toBe("lower_priority");
    const banner = r.explanation?.["promo-banner"] ?? [];
    expect(banner.find((c) => c.experience === "vip-banner")?.detail).toMatch(/traits\.lifetimeValue/);
  });

  it("every trace names the candidate's place in the rules file, the winner's as the decision does", () => {
    const r = run({ events: [event("product_view", 5 * MIN, { category: "hiking" })], explain: true });
    const hero = r.explanation?.["home-hero"] ?? [];
    for (const t of hero) expect(demo.experiences[t.ruleIndex].id).toBe(t.experience);
    expect(hero.map((t) => t.experience).sort()).toEqual(
      demo.experiences
        .filter((x: { placement: string }) => x.placement === "home-hero")
        .map((x: { id: string }) => x.id)
        .sort(),
    );
    const won = hero.find((t) => t.outcome === "won")!;
    expect(by(r)["home-hero"]).toMatchObject({ experience: "hero-hiker", ruleIndex: won.ruleIndex });
  });

  it("candidates after a holdout are traced as never evaluated, with the reason", async () => {
    // hero-ab behind an audience, so a lower candidate is reachable for those it does not take.
    const doc = structuredClone(demo);
    const ab = doc.experiences.find((x: { id: string }) => x.id === "hero-ab");
    ab.audience = { not: { ref: "known-customer" } };
    doc.experiences.push({
      id: "hero-fallback",
      placement: "home-hero",
      priority: -10,
      content: { html: "<h1>Fallback</h1>" },
    });
    const withFallback = await compile(doc);
    let checked = 0;
    for (let i = 0; i < 200 && checked < 3; i++) {
      const r = decide(withFallback, {
        visitorId: `trace-${i}`,
        now: NOW,
        traits: {},
        state: null,
        context: context(),
        consent: {},
        placements: ["home-hero"],
        explain: true,
      });
      if (r.decisions[0]?.reason !== "HOLDOUT") continue;
      checked++;
      const traces = r.explanation?.["home-hero"] ?? [];
      expect(traces.find((t) => t.experience === "hero-ab")).toMatchObject({ outcome: "held_out" });
      expect(traces.find((t) => t.experience === "hero-fallback")).toMatchObject({
        outcome: "lower_priority",
        ruleIndex: doc.experiences.length - 1,
        detail: expect.stringMatching(/not evaluated: held out of hero-test/),
      });
      expect(traces).toHaveLength(5);
    }
    expect(checked).toBe(3);
  });

  it("a missing path or a value of the wrong type is false, never an error", () => {
    const r = run({ traits: { lifetimeValue: "a lot", firstName: { nested: true } }, explain: true });
    expect(by(r)["promo-banner"]?.experience).toBe("first-visit-offer");
    expect(r.segments).not.toContain("high-value");
  });

  it("names unknown placements; defaults to the web placements of the path", () => {
    const r = run({ placements: ["home-hero", "sidebar", "constructor"] });
    expect(r.unknownPlacements).toEqual(["sidebar", "constructor"]);
    expect(
      run({ context: context({ path: "/running/trail-runner-2" }) }).decisions.map((d) => d.placement),
    ).toEqual(["promo-banner", "recommendations"]);
  });
});
