import { describe, expect, it } from "vitest";
import {
  armCounts,
  cohortsByWeek,
  dailySeries,
  isoWeek,
  mergeTallies,
  type ShardTally,
} from "../../src/core/experiment-tally.ts";
import { goalsReached, goalValue } from "../../src/core/goals.ts";
import { compileGoals } from "../../src/rules/compile.ts";

const dayOf = (iso: string) => Date.parse(`${iso}T00:00:00Z`) / 86_400_000;

describe("ISO 8601 weeks", () => {
  it("start on Monday, and week 1 holds the year's first Thursday", () => {
    expect(isoWeek(dayOf("2026-11-23"))).toBe("2026-W48"); // Monday
    expect(isoWeek(dayOf("2026-11-29"))).toBe("2026-W48"); // Sunday
    expect(isoWeek(dayOf("2027-01-01"))).toBe("2026-W53"); // a Friday: still the old year's week
    expect(isoWeek(dayOf("2024-12-30"))).toBe("2025-W01"); // a Monday: already the new year's
    expect(isoWeek(dayOf("2021-01-03"))).toBe("2020-W53");
  });
});

describe("shard counters", () => {
  const shardA: ShardTally = {
    cohorts: [
      { variant: "control", day: dayOf("2026-11-23"), visitors: 3 },
      { variant: "bold", day: dayOf("2026-11-30"), visitors: 2 },
    ],
    goals: [
      {
        variant: "control",
        day: dayOf("2026-11-23"),
        goal: "revenue",
        conversions: 1,
        sum: 50,
        sumSquares: 2500,
        sumCubes: 125000,
      },
    ],
    conversionDays: [{ variant: "control", day: dayOf("2026-11-24"), goal: "revenue", conversions: 1 }],
  };
  const shardB: ShardTally = {
    cohorts: [{ variant: "control", day: dayOf("2026-11-23"), visitors: 1 }],
    goals: [
      {
        variant: "control",
        day: dayOf("2026-11-23"),
        goal: "revenue",
        conversions: 1,
        sum: 10,
        sumSquares: 100,
        sumCubes: 1000,
      },
    ],
    conversionDays: [{ variant: "control", day: dayOf("2026-11-24"), goal: "revenue", conversions: 1 }],
  };

  it("add up across shards into each arm's visitors, conversions and value moments", () => {
    const merged = mergeTallies([shardA, shardB]);
    const control = armCounts(merged, "revenue").get("control")!;
    expect(control).toEqual({
      visitors: 4,
      conversions: 2,
      value: { n: 4, sum: 60, sumSquares: 2600, sumCubes: 126000 },
    });
    expect(armCounts(merged, "revenue").get("bold")).toMatchObject({ visitors: 2, conversions: 0 });
    const weeks = cohortsByWeek(merged);
    expect(weeks.map((w) => w.week)).toEqual(["2026-W48", "2026-W49"]);
    const week48 = armCounts(weeks[0]!.tally, "revenue");
    expect(week48.get("bold")).toBeUndefined();
    expect(week48.get("control")).toMatchObject({ visitors: 4, conversions: 2 });
    expect(dailySeries(merged)).toEqual([
      { date: "2026-11-23", variant: "control", visitors: 4, conversions: {} },
      { date: "2026-11-24", variant: "control", visitors: 0, conversions: { revenue: 2 } },
      { date: "2026-11-30", variant: "bold", visitors: 2, conversions: {} },
    ]);
  });
});

describe("goals", () => {
  const goals = compileGoals("add_to_cart", [
    { id: "revenue", event: "purchase", value: "props.order.total", window: "7d" },
  ]);

  it("the experiment's goal stays the primary goal, and listed goals follow with their value and window", () => {
    expect(goals).toEqual([
      { id: "add_to_cart", event: "add_to_cart", valuePath: null, windowMs: Number.POSITIVE_INFINITY },
      { id: "revenue", event: "purchase", valuePath: ["order", "total"], windowMs: 7 * 86_400_000 },
    ]);
    // `goal` may name a listed goal: that one is the primary.
    expect(
      compileGoals("revenue", [{ id: "revenue", event: "purchase", value: "props.value" }])[0],
    ).toMatchObject({
      id: "revenue",
      valuePath: ["value"],
    });
  });

  it("read a value from the event's props; anything not a finite number is worth 0", () => {
    const event = (props: Record<string, unknown>) => ({
      id: "e",
      type: "purchase",
      ts: 0,
      channel: "web",
      props,
    });
    const revenue = goals[1]!;
    expect(goalValue(revenue, event({ order: { total: 129.5 } }))).toBe(129.5);
    expect(goalValue(revenue, event({ order: { total: "42" } }))).toBe(42);
    expect(goalValue(revenue, event({ order: { total: "lots" } }))).toBe(0);
    expect(goalValue(revenue, event({ order: {} }))).toBe(0);
    expect(goalValue(revenue, event({}))).toBe(0);
  });

  it("each goal event of an assigned visitor is reported with its variant, goal and window", () => {
    const rules = {
      experiments: {
        "hero-test": {
          id: "hero-test",
          goals,
          startMs: Number.NEGATIVE_INFINITY,
          endMs: Number.POSITIVE_INFINITY,
        },
      },
    };
    const events = [
      { id: "a", type: "purchase", ts: 10, channel: "web", props: { order: { total: 30 } } },
      { id: "b", type: "purchase", ts: 20, channel: "web", props: { order: { total: 20 } } },
      { id: "c", type: "page_view", ts: 30, channel: "web", props: {} },
    ];
    expect(goalsReached({ "hero-test": "bold" }, events, rules)).toEqual([
      {
        experiment: "hero-test",
        variant: "bold",
        goal: "revenue",
        at: 10,
        value: 30,
        windowMs: 7 * 86_400_000,
      },
      {
        experiment: "hero-test",
        variant: "bold",
        goal: "revenue",
        at: 20,
        value: 20,
        windowMs: 7 * 86_400_000,
      },
    ]);
    expect(goalsReached({}, events, rules)).toEqual([]);
  });
});
