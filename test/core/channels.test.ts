import { describe, expect, it } from "vitest";
import { bestHour, engagementRate, preferredChannel } from "../../src/core/channels.ts";

const e = (sends: number, opens: number, clicks: number) => ({ sends, opens, clicks, lastAt: null });

describe("engagementRate", () => {
  it("shrinks small samples toward the 10% prior", () => {
    expect(engagementRate(e(0, 0, 0))).toBeCloseTo(0.1, 12);
    expect(engagementRate(e(1, 0, 1))).toBeCloseTo(2 / 11, 12);
    expect(engagementRate(e(100, 0, 40))).toBeCloseTo(41 / 110, 12);
    expect(engagementRate(e(100, 40, 30))).toBeCloseTo(51 / 110, 12);
  });
  it("one click out of one send does not beat 40 out of 100", () => {
    expect(engagementRate(e(1, 1, 1))).toBeLessThan(engagementRate(e(100, 0, 40)));
  });
  it("stays below 1 without sends (web, app) and ignores broken counters", () => {
    expect(engagementRate(e(0, 0, 1000))).toBeLessThan(1);
    expect(engagementRate(e(0, 0, 1000))).toBeGreaterThan(0.98);
    expect(engagementRate(e(-5, Number.NaN, -1))).toBeCloseTo(0.1, 12);
  });
});

describe("preferredChannel", () => {
  const engagement = {
    email: e(100, 40, 30),
    sms: e(1, 0, 1),
    push: e(50, 0, 0),
    app: e(0, 0, 2),
  };
  it("prefers the channel a person actually engages with, not one lucky click", () => {
    const p = preferredChannel(engagement);
    expect(p.channel).toBe("email");
    expect(p.rate).toBeCloseTo(51 / 110, 12);
    expect(p.ranked.map((r) => r.channel)).toEqual(["email", "app", "sms"]);
  });
  it("leaves out channels never engaged with, and restricts to the candidates", () => {
    expect(preferredChannel(engagement).ranked.some((r) => r.channel === "push")).toBe(false);
    expect(preferredChannel(engagement, ["sms", "push", "kiosk"]).channel).toBe("sms");
    expect(preferredChannel(engagement, ["push"])).toEqual({ channel: null, rate: 0, ranked: [] });
    expect(preferredChannel({})).toEqual({ channel: null, rate: 0, ranked: [] });
  });
  it("breaks ties by name and never reads inherited properties", () => {
    expect(preferredChannel({ sms: e(10, 0, 2), email: e(10, 0, 2) }).channel).toBe("email");
    expect(preferredChannel({}, ["constructor", "toString"]).channel).toBeNull();
  });
});

describe("bestHour", () => {
  const hours = (filled: Record<number, number>) => Array.from({ length: 24 }, (_, h) => filled[h] ?? 0);
  it("returns the hour with most engagement, the earliest on a tie", () => {
    expect(bestHour(hours({ 8: 5, 9: 1 }))).toBe(8);
    expect(bestHour(hours({ 20: 4, 7: 4, 12: 1 }))).toBe(7);
    expect(bestHour(hours({ 0: 3 }))).toBe(0);
  });
  it("returns null until there are enough samples", () => {
    expect(bestHour(hours({}))).toBeNull();
    expect(bestHour(hours({ 8: 2 }))).toBeNull();
    expect(bestHour(hours({ 8: 2 }), 2)).toBe(8);
    expect(bestHour(hours({ 8: 1, 9: 1, 10: 1 }))).toBe(8);
  });
  it("copes with short, long or broken counters", () => {
    expect(bestHour([0, 0, 5])).toBe(2);
    expect(bestHour([...hours({ 3: 3 }), 99])).toBe(3);
    expect(bestHour(hours({ 3: 3, 5: Number.NaN, 6: -10 }))).toBe(3);
  });
});
