import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CountPlan, countInWindow, countSince, type PropEquality } from "../../src/core/event-counts.ts";
import type { VisitorEvent, VisitorState } from "../../src/core/model.ts";
import { emptyState, HOUR_MS } from "../../src/core/visitor-state.ts";

/**
 * A rules version's planned counts are worked out by one backward walk of the log per type (and per
 * filtered prop) and decision (docs/decisions.md, record 20): each must equal the walk that count would make on its own
 * (countSince for an unfiltered count, countInWindow with the `where` for a filtered one), on any log.
 */
const NOW = Date.parse("2026-11-22T12:00:00Z");
const DAY = 86400e3;
const TYPES = ["page_view", "product_view", "purchase"];
const CATEGORIES = ["running", "hiking", 3, true];

const eventArb = fc.record({
  type: fc.constantFrom(...TYPES),
  // Up to 10 days back, a few after `now`.
  ago: fc.integer({ min: -2 * HOUR_MS, max: 10 * DAY }),
  category: fc.constantFrom(...CATEGORIES, undefined),
});

/** What a log may hold besides events: the engine skips these. */
const malformedArb = fc.constantFrom<unknown>(
  null,
  7,
  "product_view",
  [],
  { type: "product_view" },
  { type: "product_view", ts: "yesterday", props: { category: "running" } },
  { type: "product_view", ts: Number.NaN, props: { category: "running" } },
  { type: "product_view", ts: NOW - DAY, props: null },
  { type: "product_view", ts: NOW - DAY, props: ["running"] },
  { type: 5, ts: NOW - DAY, props: {} },
);

const stateArb = fc
  .record({
    events: fc.array(eventArb, { maxLength: 80 }),
    malformed: fc.array(fc.tuple(fc.nat(), malformedArb), { maxLength: 4 }),
    // Now and then two entries out of order, as a hand-edited or merged log might be.
    swaps: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 2 }),
    prunedAgo: fc.option(fc.integer({ min: 0, max: 12 * DAY }), { nil: null }),
    counters: fc.array(
      fc.tuple(
        fc.constantFrom(...TYPES),
        fc.integer({ min: 0, max: 14 * 24 }),
        fc.integer({ min: 0, max: 9 }),
      ),
      { maxLength: 30 },
    ),
    badBucket: fc.boolean(),
  })
  .map(({ events, malformed, swaps, prunedAgo, counters, badBucket }) => {
    const state = emptyState("v") as VisitorState & { events: unknown[] };
    const log: unknown[] = events
      .map(
        ({ type, ago, category }, i): VisitorEvent => ({
          id: `e${i}`,
          type,
          ts: NOW - ago,
          channel: "web",
          props: category === undefined ? {} : { category },
        }),
      )
      .sort((a, b) => a.ts - b.ts);
    for (const [a, b] of swaps)
      if (log.length > 0) {
        const i = a % log.length;
        const j = b % log.length;
        [log[i], log[j]] = [log[j], log[i]];
      }
    for (const [at, entry] of malformed) log.splice(at % (log.length + 1), 0, entry);
    const counts: Record<string, Array<[number, number]>> = {};
    for (const [type, hoursAgo, n] of counters) {
      counts[type] ??= [];
      counts[type].push([Math.floor((NOW - hoursAgo * HOUR_MS) / HOUR_MS) * HOUR_MS, n]);
    }
    for (const buckets of Object.values(counts)) buckets.sort((a, b) => a[0] - b[0]);
    if (badBucket) (counts as Record<string, unknown>).purchase = [["x", 1], null, [NOW - DAY, 2]];
    return {
      ...state,
      events: log,
      counts,
      prunedThrough: prunedAgo === null ? null : NOW - prunedAgo,
    } as VisitorState;
  });

const slotArb = fc.record({
  type: fc.constantFrom(...TYPES, "unplanned_type"),
  windowMs: fc.constantFrom(HOUR_MS, DAY, 2 * DAY, 7 * DAY, 9 * DAY + 7, 30 * DAY),
  where: fc.option(
    fc.record({ key: fc.constantFrom("category", "constructor"), value: fc.constantFrom(...CATEGORIES) }),
    { nil: null },
  ),
});

/** The `where` a filtered count tests (`event.props.<key> eq value`), as conditions.ts compiles it. */
const propIs =
  ({ key, value }: PropEquality) =>
  (event: VisitorEvent) => {
    const props: unknown = event.props;
    if (typeof props !== "object" || props === null || !Object.hasOwn(props, key)) return false;
    const actual: unknown = (props as Record<string, unknown>)[key];
    return (
      (typeof actual === "string" || typeof actual === "number" || typeof actual === "boolean") &&
      actual === value
    );
  };

describe("planned counts, one walk per type", () => {
  it("equal each count's own walk on any log, read in any order, whatever else the plan counts", () => {
    fc.assert(
      fc.property(
        stateArb,
        fc.array(slotArb, { minLength: 1, maxLength: 12 }),
        fc.nat(),
        fc.boolean(),
        (state, slots, shift, manyTypes) => {
          const plan = new CountPlan();
          // Other types' slots in the plan (their own walks) change nothing.
          if (manyTypes) for (let t = 0; t < 9; t++) plan.slot(`other_${t}`, DAY);
          const planned = slots.map(({ type, windowMs, where }) => plan.slot(type, windowMs, where));
          const tally = plan.tally(state, NOW);
          // Read from a shifted start, so a longer window is often read before a shorter one.
          for (let k = 0; k < slots.length; k++) {
            const i = (k + shift) % slots.length;
            const { type, windowMs, where } = slots[i]!;
            const alone =
              where === null
                ? countSince(state, type, NOW - windowMs, NOW)
                : countInWindow(state.events, type, NOW - windowMs, NOW, propIs(where));
            expect(tally.count(planned[i]!)).toBe(alone);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it("gives the same slot for the same count, and counts a state with no log as nothing", () => {
    const plan = new CountPlan();
    const a = plan.slot("product_view", DAY, { key: "category", value: "running" });
    expect(plan.slot("product_view", DAY, { key: "category", value: "running" })).toBe(a);
    expect(plan.slot("product_view", DAY)).not.toBe(a);
    expect(plan.tally(null, NOW).count(a)).toBe(0);
    const broken = { ...emptyState("v"), events: "not a log" } as unknown as VisitorState;
    expect(plan.tally(broken, NOW).count(a)).toBe(0);
  });
});
