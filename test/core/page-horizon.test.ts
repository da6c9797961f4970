import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decide } from "../../src/core/decide.ts";
import type { VisitorEvent } from "../../src/core/model.ts";
import { pageState } from "../../src/core/page-state.ts";
import { DEFAULT_LIMITS, prune, recordExposure } from "../../src/core/visitor-state.ts";
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

  it("names the capped experiences, the longest windowed count and whether channel engagement is read", async () => {
    const rules = await compile({
      ...doc,
      conditions: { ...doc.conditions, "likes-email": { preferredChannel: "email" } },
      experiences: [
        ...doc.experiences,
        {
          id: "banner-capped",
          placement: "banner",
          audience: { ref: "likes-email" },
          caps: [{ max: 2, per: "1d" }],
          content: { html: "c" },
        },
      ],
    });
    expect(rules.pageForPath("/running").reads).toEqual({
      countsWithinMs: DAY,
      exposures: ["banner-capped"],
      engagement: true,
    });
    expect(rules.pageForPath("/").reads.countsWithinMs).toBe(3 * DAY);
    // The shelf reads the whole log (affinity), but no windowed count, so none of the counters.
    expect(rules.eventHorizonFor(["shelf"])).toBe(Number.POSITIVE_INFINITY);
    expect(rules.pageForPath("/nowhere-else").reads).toEqual({
      countsWithinMs: DAY,
      exposures: ["banner-capped"],
      engagement: true,
    });
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

  /**
   * A busy visitor: `heavy` adds four months of daily mail and browsing, so the 500-event log has let
   * go of its oldest events and the hourly counters hold the rest; capped banners shown, some up to
   * their cap; engagement by channel.
   */
  function visitorState(rules: Awaited<ReturnType<typeof compile>>, seed: number, heavy: boolean) {
    const events = history(seed);
    if (heavy) {
      for (let day = 0; day < 120; day++) {
        const at = day * DAY + ((seed * 5 + day) % 20) * HOUR;
        events.push(event("email_send", at + 1, { campaign: `c${day}` }, "email"));
        if ((day + seed) % 3 === 0) events.push(event("email_open", at, { campaign: `c${day}` }, "email"));
        if ((day + seed) % 9 === 0)
          events.push(event("email_click", at - 1, { campaign: `c${day}` }, "email"));
        for (let v = 0; v < 4; v++) events.push(event("page_view", at - v * 60e3 - 2, { path: "/" }));
      }
      // A newsletter click within the day, then a burst of pages: the log keeps only the burst, and
      // the banner's one-day click count reads the counters for the click.
      if (seed % 2 === 0) {
        events.push(event("email_click", 20 * HOUR, { campaign: "weekly" }, "email"));
        for (let v = 0; v < 520; v++) events.push(event("page_view", v * 30e3 + 3, { path: "/running" }));
      }
    }
    const state = stateOf(events, rules, `visitor-${seed}`);
    prune(state, NOW, DEFAULT_LIMITS);
    for (const [i, id] of ["cart-reminder", "browse-reminder", "first-visit-offer"].entries())
      for (let n = 0; n < (seed + i) % 6; n++) recordExposure(state, id, NOW - (n * 5 + 1) * HOUR);
    return state;
  }
  it("decide the same from the part of the state their placements read as from the whole state", async () => {
    const rules = await compile(demo);
    const traitsOf = [{}, { firstName: "Ada", lifetimeValue: 1200, tier: "gold" }];
    let compared = 0;
    let pruned = 0;
    for (const path of ["/", "/running", "/hiking", "/running/trail-runner-2", "/cart"]) {
      const page = rules.pageForPath(path);
      for (let seed = 0; seed < 24; seed++) {
        const state = visitorState(rules, seed, seed >= 12);
        if (state.prunedThrough !== null) pruned++;
        const input = {
          visitorId: `visitor-${seed}`,
          now: NOW,
          traits: traitsOf[seed % 2]!,
          context: context({ path, url: `https://shop.example${path}` }),
          consent: {},
          placements: page.placements,
          segments: false,
        };
        const whole = decide(rules, { ...input, state });
        const sent = pageState(state, NOW, NOW - page.eventHorizonMs, page.reads);
        // What crosses is a structured clone: the comparison decides from one.
        const trimmed = decide(rules, { ...input, state: structuredClone(sent) });
        expect(trimmed.decisions).toEqual(whole.decisions);
        expect(trimmed.exposures).toEqual(whole.exposures);
        expect(trimmed.assignments).toEqual(whole.assignments);
        expect(trimmed.replacedAssignments).toEqual(whole.replacedAssignments);
        compared += whole.decisions.filter((decision) => decision.experience !== null).length;
      }
    }
    // The comparison is worth something only if the visitors won experiences and some logs were cut.
    expect(compared).toBeGreaterThan(40);
    expect(pruned).toBeGreaterThan(20);
  });

  it("a page's object call carries a small part of a busy visitor's state", async () => {
    const rules = await compile(demo);
    const state = visitorState(rules, 13, true);
    const bytes = (value: unknown) => JSON.stringify(value).length;
    for (const path of ["/", "/running", "/cart"]) {
      const page = rules.pageForPath(path);
      const sent = pageState(state, NOW, NOW - page.eventHorizonMs, page.reads);
      expect(sent.engagementHours).toEqual([]);
      expect(bytes(sent.counts)).toBeLessThan(bytes(state.counts) / 10);
    }
  });
});
