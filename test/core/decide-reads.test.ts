import { describe, expect, it } from "vitest";
import { type DecisionInput, decide } from "../../src/core/index.ts";
import { compile, context, DAY, event, HOUR, NOW, stateOf } from "./helpers.ts";

/**
 * decide() reads only what a rule reads (docs/decisions.md, record 20): counts kept once per decision,
 * segments worked out once even when explained, the event log checked as it is read.
 */
const doc = {
  version: "reads",
  segments: {
    browsers: {
      condition: {
        all: [
          { countWithin: { event: "product_view", window: "7d" }, op: "gte", value: 3 },
          { op: "exists", path: "traits.firstName" },
        ],
      },
    },
  },
  placements: {
    hero: { selector: "#hero", pages: ["*"] },
    side: { selector: "#side", pages: ["*"] },
    foot: { selector: "#foot", pages: ["*"] },
  },
  experiences: [
    { id: "hero-browsers", placement: "hero", audience: { segment: "browsers" }, content: { html: "a" } },
    { id: "side-browsers", placement: "side", audience: { segment: "browsers" }, content: { html: "b" } },
    {
      id: "foot-twice-today",
      placement: "foot",
      audience: { countWithin: { event: "product_view", window: "1d" }, op: "gte", value: 2 },
      content: { html: "c" },
    },
    {
      id: "foot-three-this-week",
      placement: "foot",
      priority: -1,
      audience: { countWithin: { event: "product_view", window: "7d" }, op: "gte", value: 3 },
      content: { html: "d" },
    },
  ],
};

const views = [
  event("product_view", 2 * HOUR),
  event("product_view", 2 * DAY),
  event("product_view", 3 * DAY),
  event("page_view", 1 * HOUR),
];

async function decideFor(over: Partial<DecisionInput>) {
  const rules = await compile(doc);
  return decide(rules, {
    visitorId: "v1",
    now: NOW,
    traits: { firstName: "Ana" },
    state: stateOf(views, rules),
    context: context(),
    consent: {},
    ...over,
  });
}

const shown = (result: Awaited<ReturnType<typeof decideFor>>) =>
  Object.fromEntries(result.decisions.map((d) => [d.placement, d.experience]));

describe("decide() reads only what a rule reads", () => {
  it("counts the same events in different windows for different audiences", async () => {
    // One product view today, three this week: the 1-day audience fails, the 7-day one passes.
    expect(shown(await decideFor({ segments: false }))).toEqual({
      hero: "hero-browsers",
      side: "side-browsers",
      foot: "foot-three-this-week",
    });
  });

  it("explains a segment's failing condition for every experience that uses it", async () => {
    const result = await decideFor({ traits: {}, explain: true });
    const detail = (placement: string) => result.explanation?.[placement]?.[0]?.detail;
    expect(shown(result)).toEqual({ hero: null, side: null, foot: "foot-three-this-week" });
    expect(detail("hero")).toMatch(/segment browsers — segments\.browsers\.all\[1\]: traits\.firstName/);
    expect(detail("side")).toBe(detail("hero")?.replace("experiences[0]", "experiences[1]"));
    expect(result.segments).toEqual([]);
  });

  it("skips entries of the log that are not events, and counts the rest", async () => {
    const rules = await compile(doc);
    const state = stateOf(views, rules);
    const result = decide(rules, {
      visitorId: "v1",
      now: NOW,
      traits: { firstName: "Ana" },
      state: { ...state, events: [null, 7, { type: "product_view" }, ...state.events, "x"] as never },
      context: context(),
      consent: {},
    });
    expect(shown(result).foot).toBe("foot-three-this-week");
    expect(result.segments).toEqual(["browsers"]);
  });

  it("skips stored intent entries that are not scores, and decays the rest", async () => {
    const rules = await compile({ ...doc, dimensions: { running: { halfLife: "1d", cap: 100 } } });
    const state = stateOf(views, rules);
    const result = decide(rules, {
      visitorId: "v1",
      now: NOW,
      traits: {},
      state: {
        ...state,
        intent: {
          running: { value: 8, ts: NOW - DAY },
          hiking: { value: "9", ts: NOW },
          trail: null,
          camp: [1, 2],
          ski: { value: 50 },
        } as never,
      },
      context: context(),
      consent: {},
    });
    expect(result.intent).toEqual({ top: "running", scores: { running: 4 } });
  });
});
