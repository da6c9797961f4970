import { describe, expect, it } from "vitest";
import { addSignal, decayAll, decayed, mergeIntent, topIntent, topOfDecayed } from "../../src/core/intent.ts";

const NOW = Date.UTC(2026, 10, 20, 12);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe("decayed", () => {
  it("halves every half-life", () => {
    const s = { value: 8, ts: NOW };
    expect(decayed(s, NOW, DAY)).toBe(8);
    expect(decayed(s, NOW + DAY, DAY)).toBeCloseTo(4, 12);
    expect(decayed(s, NOW + 3 * DAY, DAY)).toBeCloseTo(1, 12);
    expect(decayed(s, NOW + 12 * HOUR, DAY)).toBeCloseTo(8 / Math.SQRT2, 12);
    expect(decayed({ value: -8, ts: NOW }, NOW + DAY, DAY)).toBeCloseTo(-4, 12);
  });
  it("does not decay for a missing, zero, negative or infinite half-life, nor before the score's time", () => {
    const s = { value: 8, ts: NOW };
    for (const h of [0, -DAY, Number.POSITIVE_INFINITY, Number.NaN])
      expect(decayed(s, NOW + 100 * DAY, h)).toBe(8);
    expect(decayed(s, NOW - DAY, DAY)).toBe(8);
    expect(decayed(undefined, NOW, DAY)).toBe(0);
  });
});

describe("addSignal", () => {
  it("decays to the event's time, adds, and clamps to [−cap, cap]", () => {
    const s = addSignal(undefined, 8, NOW, DAY, 10);
    expect(s).toEqual({ value: 8, ts: NOW });
    expect(addSignal(s, 2, NOW + DAY, DAY, 10)).toEqual({ value: 6, ts: NOW + DAY });
    expect(addSignal(s, 8, NOW, DAY, 10).value).toBe(10);
    expect(addSignal(s, -30, NOW, DAY, 10).value).toBe(-10);
    expect(addSignal(undefined, 50, NOW, DAY, 10).value).toBe(10);
  });
  it("counts a late event as if it had arrived in order, keeping the newer time", () => {
    const inOrder = addSignal(addSignal(undefined, 4, NOW - DAY, DAY, 100), 4, NOW, DAY, 100);
    const late = addSignal(addSignal(undefined, 4, NOW, DAY, 100), 4, NOW - DAY, DAY, 100);
    expect(late.ts).toBe(NOW);
    expect(late.value).toBeCloseTo(inOrder.value, 12);
    expect(late.value).toBeCloseTo(6, 12);
  });
  it("treats a cap that is not positive as no cap", () => {
    expect(addSignal(undefined, 1e6, NOW, DAY, 0).value).toBe(1e6);
  });
});

describe("decayAll and topIntent", () => {
  const scores = {
    running: { value: 8, ts: NOW - DAY },
    hiking: { value: 5, ts: NOW },
    returns: { value: -9, ts: NOW },
  };
  const halfLives = { running: DAY, hiking: 7 * DAY };

  it("decays each dimension with its own half-life; unknown dimensions do not decay", () => {
    expect(decayAll(scores, NOW, halfLives)).toEqual({ running: 4, hiking: 5, returns: -9 });
  });

  it("picks the strongest positive dimension at the given time", () => {
    expect(topIntent(scores, NOW, halfLives)).toEqual({ dimension: "hiking", value: 5 });
    // A day earlier, running had not decayed yet.
    expect(topIntent(scores, NOW - DAY, halfLives).dimension).toBe("running");
  });

  it("breaks ties by name, whatever the insertion order, and gives null for nothing positive", () => {
    const a = { running: { value: 3, ts: NOW }, hiking: { value: 3, ts: NOW } };
    const b = { hiking: { value: 3, ts: NOW }, running: { value: 3, ts: NOW } };
    expect(topIntent(a, NOW, {}).dimension).toBe("hiking");
    expect(topIntent(b, NOW, {}).dimension).toBe("hiking");
    expect(topIntent({ running: { value: 0, ts: NOW }, x: { value: -2, ts: NOW } }, NOW, {})).toEqual({
      dimension: null,
      value: 0,
    });
    expect(topIntent({}, NOW, {})).toEqual({ dimension: null, value: 0 });
    expect(topOfDecayed({ b: 1, a: 1 }).dimension).toBe("a");
  });
});

describe("mergeIntent", () => {
  it("sums both visitors' scores decayed to now, within each dimension's cap", () => {
    const merged = mergeIntent(
      { running: { value: 8, ts: NOW - DAY }, hiking: { value: 60, ts: NOW } },
      { running: { value: 1, ts: NOW }, hiking: { value: 60, ts: NOW }, golf: { value: 2, ts: NOW - DAY } },
      NOW,
      { running: DAY, hiking: DAY },
      { running: 100, hiking: 100 },
    );
    expect(merged).toEqual({
      running: { value: 5, ts: NOW },
      hiking: { value: 100, ts: NOW },
      golf: { value: 2, ts: NOW },
    });
  });
  it("is not idempotent by itself: merging the same source twice counts it twice", () => {
    const a = { running: { value: 1, ts: NOW } };
    const once = mergeIntent(a, a, NOW, {}, {});
    const twice = mergeIntent(once, a, NOW, {}, {});
    expect(twice.running!.value).toBe(3);
  });
  it("ignores inherited keys and keeps a '__proto__' dimension as data", () => {
    const b = JSON.parse('{"__proto__": {"value": 1, "ts": 0}}') as Record<
      string,
      { value: number; ts: number }
    >;
    const merged = mergeIntent({}, b, NOW, {}, {});
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(Object.keys(merged)).toEqual(["__proto__"]);
    expect(mergeIntent({}, {}, NOW, { constructor: DAY }, {})).toEqual({});
  });
});
