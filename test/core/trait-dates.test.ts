import { describe, expect, it } from "vitest";
import type { decide } from "../../src/core/decide.ts";
import { type Condition, parseRules } from "../../src/rules/index.ts";
import { DAY, event, experienceWins, HOUR, NOW, stateOf } from "./helpers.ts";

// Dates a CRM sends as traits, and event times, compared with how long ago they were.
async function matches(audience: Condition, input: Partial<Parameters<typeof decide>[1]> = {}) {
  const doc = {
    version: "t",
    placements: { slot: { selector: "#slot" } },
    experiences: [{ id: "x", placement: "slot", audience, content: { html: "yes" } }],
  };
  return experienceWins(doc, input);
}

const iso = (ms: number) => new Date(ms).toISOString();
const olderThan60d: Condition = { op: "olderThan", path: "traits.lastOrderAt", value: "60d" };
const within7d: Condition = { op: "within", path: "traits.lastOrderAt", value: "7d" };

describe("olderThan and within on a date trait", () => {
  it.each([
    ["70 days ago, ISO with Z", iso(NOW - 70 * DAY), true],
    ["50 days ago", iso(NOW - 50 * DAY), false],
    ["exactly 60 days ago", iso(NOW - 60 * DAY), true],
    ["70 days ago in epoch ms", NOW - 70 * DAY, true],
    ["70 days ago with an offset", "2026-09-13T13:00:00+01:00", true],
    ["a calendar date 61 days back", "2026-09-22", true],
    ["a date that is no ISO text", "September 13, 2026", false],
    ["a month that does not exist", "2026-13-01", false],
    ["70 days ago in epoch seconds (not ms)", Math.floor((NOW - 70 * DAY) / 1000), false],
    ["a boolean", true, false],
    ["an empty string", "", false],
  ] as const)("olderThan 60d, lastOrderAt %s → %s", async (_what, lastOrderAt, expected) => {
    expect(await matches(olderThan60d, { traits: { lastOrderAt } })).toBe(expected);
  });

  it("a missing trait is neither older than 60 days nor within 7", async () => {
    expect(await matches(olderThan60d)).toBe(false);
    expect(await matches(within7d)).toBe(false);
  });

  it.each([
    ["3 days ago", iso(NOW - 3 * DAY), true],
    ["exactly 7 days ago", iso(NOW - 7 * DAY), false],
    ["now", iso(NOW), true],
    ["tomorrow", iso(NOW + DAY), false],
  ] as const)("within 7d, lastOrderAt %s → %s", async (_what, lastOrderAt, expected) => {
    expect(await matches(within7d, { traits: { lastOrderAt } })).toBe(expected);
  });

  it("a date-time without an offset is read as UTC", async () => {
    // 2026-11-15T11:00:00 is 7 days and 1 hour before NOW in UTC; read as UTC+2 it would be within.
    expect(await matches(within7d, { traits: { lastOrderAt: "2026-11-15T11:00:00" } })).toBe(false);
    expect(await matches(within7d, { traits: { lastOrderAt: "2026-11-15T13:00:00" } })).toBe(true);
  });

  it("a date in the future is not older than anything", async () => {
    expect(await matches(olderThan60d, { traits: { lastOrderAt: iso(NOW + 90 * DAY) } })).toBe(false);
  });
});

describe("olderThan and within on event times", () => {
  it("visitor.firstSeen within 7d: first seen this week", async () => {
    const cond: Condition = { op: "within", path: "visitor.firstSeen", value: "7d" };
    expect(await matches(cond, { state: stateOf([event("page_view", 2 * DAY)]) })).toBe(true);
    expect(await matches(cond, { state: stateOf([event("page_view", 9 * DAY)]) })).toBe(false);
  });

  it("a countWithin filter on event.ts counts only the events older than its duration", async () => {
    // Purchases in the last 30 days, but not in the last 7: bought before, not this week.
    const cond: Condition = {
      countWithin: {
        event: "purchase",
        window: "30d",
        where: { path: "event.ts", op: "olderThan", value: "7d" },
      },
      op: "gte",
      value: 2,
    };
    const recent = [event("purchase", 10 * DAY), event("purchase", 2 * DAY), event("purchase", HOUR)];
    expect(await matches(cond, { state: stateOf(recent) })).toBe(false);
    const older = [event("purchase", 20 * DAY), event("purchase", 10 * DAY), event("purchase", HOUR)];
    expect(await matches(cond, { state: stateOf(older) })).toBe(true);
  });
});

describe("validation of date comparisons", () => {
  const doc = (value: unknown) => ({
    version: "t",
    segments: { lapsed: { condition: { op: "olderThan", path: "traits.lastOrderAt", value } } },
  });

  it.each([
    ["60 days", 'olderThan needs a duration such as "60d"'],
    [60, 'olderThan needs a duration such as "60d"'],
    ["0d", "olderThan needs a duration longer than zero"],
  ])("refuses %j at the value's path", (value, message) => {
    const parsed = parseRules(doc(value));
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.errors).toContainEqual(
      expect.objectContaining({
        path: "segments.lapsed.condition.value",
        message: expect.stringContaining(message),
      }),
    );
  });

  it("accepts a duration", () => {
    expect(parseRules(doc("60d")).ok).toBe(true);
  });
});
