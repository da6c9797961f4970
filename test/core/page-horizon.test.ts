import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decide } from "../../src/core/decide.ts";
import type { VisitorEvent, VisitorState } from "../../src/core/model.ts";
import { firstAfter } from "../../src/core/visitor-state.ts";
import { compile, context, DAY, event, HOUR, NOW, stateOf } from "./helpers.ts";

/**
 * A page asks the visitor's object for the part of the event log its own placements read
 * (CompiledRules.eventHorizonFor), not the part every rule of the document reads.
 */
describe("the event log a page's placements read", () => {
  const doc = {
    version: "horizon",
    conditions: {
      "viewed-lately": { countWithin: { event: "product_view", window: "3d" }, op: "gte", value: 2 },
      "clicked-today": { countWithin: { event: "email_click", window: "1d" }, op: "gte", value: 1 },
    },
    segments: {
      browsers: {
        condition: { all: [{ ref: "viewed-lately" }, { op: "exists", path: "traits.firstName" }] },
      },
      // Read only by the API's segment list: no placement names it.
      readers: { condition: { countWithin: { event: "email_open", window: "30d" }, op: "gte", value: 1 } },
    },
    placements: {
      hero: { selector: "#hero", pages: ["/"] },
      banner: { selector: "#banner", pages: ["*"] },
      shelf: { selector: "#shelf", pages: ["/"] },
    },
    experiences: [
      { id: "hero-browsers", placement: "hero", audience: { segment: "browsers" }, content: { html: "a" } },
      {
        id: "banner-mail",
        placement: "banner",
        audience: { not: { ref: "clicked-today" } },
        content: { html: "b" },
      },
      { id: "shelf-for-you", placement: "shelf", content: { html: "<p>{{ affinity.top }}</p>" } },
    ],
  };

  it("follows the segments and named conditions an audience names", async () => {
    const rules = await compile(doc);
    expect(rules.eventHorizonFor(["hero"])).toBe(3 * DAY);
    expect(rules.eventHorizonFor(["banner"])).toBe(DAY);
    expect(rules.eventHorizonFor(["hero", "banner"])).toBe(3 * DAY);
  });

  it("is unbounded for a placement whose content reads the visitor's history", async () => {
    const rules = await compile(doc);
    expect(rules.eventHorizonFor(["shelf"])).toBe(Number.POSITIVE_INFINITY);
  });

  it("is the whole document's for a placement the rules do not have", async () => {
    const rules = await compile({ ...doc, experiences: doc.experiences.slice(0, 2) });
    expect(rules.eventHorizonMs).toBe(30 * DAY);
    expect(rules.eventHorizonFor(["nowhere"])).toBe(30 * DAY);
    expect(rules.eventHorizonFor([])).toBe(0);
  });
});

describe("the demo rules' pages", () => {
  const demo = JSON.parse(readFileSync(new URL("../../rules/northstar.rules.json", import.meta.url), "utf8"));

  it("the home page's hero reads no event", async () => {
    const rules = await compile(demo);
    expect(rules.eventHorizonFor(["home-hero"])).toBe(0);
  });

  /** Sixty days of a shopper's events, varied by `seed`: views with categories and tags, carts, mail. */
  function history(seed: number): VisitorEvent[] {
    const types = ["page_view", "product_view", "add_to_cart", "email_click", "email_open", "purchase"];
    const categories = ["running", "hiking", "camp"];
    const events: VisitorEvent[] = [];
    for (let i = 0; i < 90; i++) {
      const type = types[(i * (seed + 3)) % (seed % 2 ? types.length : 3)]!;
      const category = categories[(i + seed) % categories.length]!;
      const ago = ((i * 37 + seed * 11) % (60 * 24)) * HOUR + ((seed * 7 + i) % 50) * 60e3;
      events.push(event(type, ago, { category, tags: [category, "trail"], path: `/${category}` }));
    }
    // Within the day for some: a newsletter click (the banner's 1-day window), a fresh view.
    if (seed % 3 === 0) events.push(event("email_click", 2 * HOUR, { campaign: "weekly" }, "email"));
    if (seed % 4 === 1)
      events.push(event("product_view", 30 * 60e3, { category: "hiking", tags: ["hiking"] }));
    return events;
  }

  /** What the visitor's object sends for `eventsSince` (src/state/visitor-do.ts snapshot). */
  function since(state: VisitorState, t: number): VisitorState {
    return { ...state, events: state.events.slice(firstAfter(state.events, t)) };
  }

  it("decide the same from the part of the log their placements read as from the whole log", async () => {
    const rules = await compile(demo);
    const traitsOf = [{}, { firstName: "Ada", lifetimeValue: 1200, tier: "gold" }];
    let compared = 0;
    for (const path of ["/", "/running", "/hiking", "/running/trail-runner-2", "/cart"]) {
      const placements = rules.pageForPath(path).placements;
      const horizon = rules.eventHorizonFor(placements);
      for (let seed = 0; seed < 12; seed++) {
        const state = stateOf(history(seed), rules, `visitor-${seed}`);
        const input = {
          visitorId: `visitor-${seed}`,
          now: NOW,
          traits: traitsOf[seed % 2]!,
          context: context({ path, url: `https://shop.example${path}` }),
          consent: {},
          placements,
          segments: false,
        };
        const whole = decide(rules, { ...input, state });
        const trimmed = decide(rules, { ...input, state: since(state, NOW - horizon) });
        expect(trimmed.decisions).toEqual(whole.decisions);
        expect(trimmed.exposures).toEqual(whole.exposures);
        expect(trimmed.assignments).toEqual(whole.assignments);
        compared += whole.decisions.filter((decision) => decision.experience !== null).length;
      }
    }
    // The comparison is worth something only if the visitors won experiences.
    expect(compared).toBeGreaterThan(20);
  });
});
