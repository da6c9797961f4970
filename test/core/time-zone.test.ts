import { describe, expect, it } from "vitest";
import { localHours } from "../../src/core/channels.ts";
import { isTimeZone, utcOffsetMinutes } from "../../src/core/time-zone.ts";

const WINTER = Date.parse("2026-11-22T10:00:00Z");
const SUMMER = Date.parse("2026-07-12T10:00:00Z");

describe("time zones", () => {
  it("knows IANA names and refuses others", () => {
    expect(isTimeZone("Europe/Paris")).toBe(true);
    expect(isTimeZone("UTC")).toBe(true);
    expect(isTimeZone("Mars/Olympus")).toBe(false);
    expect(isTimeZone("")).toBe(false);
    expect(isTimeZone(42)).toBe(false);
  });

  it("gives a zone's offset from UTC at a time, summer time and half hours included", () => {
    expect(utcOffsetMinutes("Europe/Paris", WINTER)).toBe(60);
    expect(utcOffsetMinutes("Europe/Paris", SUMMER)).toBe(120);
    expect(utcOffsetMinutes("America/New_York", WINTER)).toBe(-300);
    expect(utcOffsetMinutes("Asia/Kolkata", WINTER)).toBe(330);
    expect(utcOffsetMinutes("UTC", WINTER)).toBe(0);
    expect(utcOffsetMinutes("Mars/Olympus", WINTER)).toBeNull();
  });
});

describe("localHours", () => {
  const utc = (counts: Record<number, number>) => Array.from({ length: 24 }, (_, h) => counts[h] ?? 0);

  it("moves each UTC hour's count to the zone's hour, across midnight both ways", () => {
    const paris = localHours(utc({ 19: 3, 23: 1 }), 60);
    expect(paris[20]).toBe(3);
    expect(paris[0]).toBe(1);
    const newYork = localHours(utc({ 2: 2 }), -300);
    expect(newYork[21]).toBe(2);
    expect(newYork.reduce((a, b) => a + b, 0)).toBe(2);
  });

  it("puts a half-hour zone's count in the local hour holding the UTC hour's middle", () => {
    // 14:00–15:00 UTC is 19:30–20:30 in Kolkata: its middle, 20:00, is in hour 20.
    expect(localHours(utc({ 14: 4 }), 330)[20]).toBe(4);
  });
});
