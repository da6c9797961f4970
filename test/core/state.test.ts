import { describe, expect, it } from "vitest";
import { decide } from "../../src/core/decide.ts";
import { mergeTraits } from "../../src/core/traits.ts";
import {
  applyEvent,
  DEFAULT_LIMITS,
  emptyState,
  own,
  prune,
  recordExposure,
  stateLimits,
} from "../../src/core/visitor-state.ts";
import { readConfig } from "../../src/platform/config.ts";
import { mergeVisitorState } from "../../src/state/merge.ts";
import { compile, context, DAY, event, HOUR, MIN, NOW } from "./helpers.ts";

describe("a visitor's state", () => {
  it("counts visits after 30 minutes of quiet, keeps the log sorted, and engagement per channel", () => {
    const s = emptyState("v");
    for (const e of [
      event("page_view", 3 * HOUR),
      event("page_view", 3 * HOUR - 10 * MIN),
      event("email_send", 2 * HOUR, {}, "email"),
      event("email_open", HOUR, {}, "email"),
      event("page_view", 5 * MIN),
      event("search", 4 * HOUR), // arrives late, belongs first
    ]) {
      applyEvent(s, e, null);
    }
    expect(s.events.map((e) => e.type)).toEqual([
      "search",
      "page_view",
      "page_view",
      "email_send",
      "email_open",
      "page_view",
    ]);
    expect(s.sessionCount).toBe(2); // the send and the open are not visits: search + views, then the view 5 min ago
    expect(s.engagement.email).toMatchObject({ sends: 1, opens: 1, clicks: 0 });
    expect(s.engagementHours.reduce((a, b) => a + b, 0)).toBe(4); // three page views and one open
  });

  it("stays bounded: events by count and age, counters by age", () => {
    const s = emptyState("v");
    for (let i = 0; i < 700; i++) applyEvent(s, event("page_view", 40 * DAY - i * HOUR), null);
    prune(s, NOW);
    expect(s.events.length).toBeLessThanOrEqual(500);
    expect(s.events[0]!.ts).toBeGreaterThanOrEqual(NOW - 30 * DAY);
    prune(s, NOW + 200 * DAY);
    expect(s.events).toHaveLength(0);
    expect(s.counts.page_view).toBeUndefined();
  });
});

describe("the event log's bounds from the deployment's vars", () => {
  it("reads whole numbers in range, keeps the default (and names the var) for anything else", () => {
    expect(readConfig({ ORIGIN: "https://a.example" }).config).toMatchObject({
      EVENT_LOG_MAX: 500,
      EVENT_LOG_MAX_AGE_DAYS: 30,
    });
    const set = readConfig({
      ORIGIN: "https://a.example",
      EVENT_LOG_MAX: "200",
      EVENT_LOG_MAX_AGE_DAYS: "14",
    });
    expect(
      stateLimits({
        maxEvents: set.config.EVENT_LOG_MAX,
        maxEventAgeDays: set.config.EVENT_LOG_MAX_AGE_DAYS,
      }),
    ).toEqual({ ...DEFAULT_LIMITS, maxEvents: 200, maxEventAgeMs: 14 * DAY });
    expect(set.problems).toEqual([]);
    for (const bad of ["0", "-5", "1e3", "12.5", "lots", "10001"]) {
      const read = readConfig({ ORIGIN: "https://a.example", EVENT_LOG_MAX: bad });
      expect(read.config.EVENT_LOG_MAX).toBe(DEFAULT_LIMITS.maxEvents);
      expect(read.problems.map((p) => p.name)).toEqual(["EVENT_LOG_MAX"]);
    }
  });

  it("pruning keeps what the configured bounds allow", () => {
    const limits = stateLimits({ maxEvents: 10, maxEventAgeDays: 1 });
    const s = emptyState("v");
    for (let i = 0; i < 30; i++) applyEvent(s, event("page_view", i * HOUR), null, limits);
    prune(s, NOW, limits);
    expect(s.events).toHaveLength(10);
    expect(s.events[0]!.ts).toBe(NOW - 9 * HOUR);
  });
});

describe("hourly counts", () => {
  it("count each event in its hour, sorted by hour, whether events arrive in order or late", () => {
    const s = emptyState("v");
    const hourOf = (ago: number) => Math.floor((NOW - ago) / HOUR) * HOUR;
    for (const ago of [5 * HOUR, 3 * HOUR, 3 * HOUR, HOUR, 4 * HOUR, 3 * HOUR, 6 * HOUR])
      applyEvent(s, event("search", ago), null);
    expect(s.counts.search).toEqual([
      [hourOf(6 * HOUR), 1],
      [hourOf(5 * HOUR), 1],
      [hourOf(4 * HOUR), 1],
      [hourOf(3 * HOUR), 3],
      [hourOf(HOUR), 1],
    ]);
  });
});

describe("state maps keyed by names from outside", () => {
  it("an event type or experiment named like an Object member counts like any other, and merges", () => {
    const s = emptyState("v");
    applyEvent(s, event("constructor", HOUR), null);
    applyEvent(s, event("constructor", 2 * HOUR), null);
    recordExposure(s, "constructor", NOW);
    expect(Object.hasOwn(s.counts, "constructor")).toBe(true);
    expect(own(s.counts, "constructor")!.reduce((n, [, c]) => n + c, 0)).toBe(2);
    expect(own(s.lastByType, "constructor")).toBe(NOW - HOUR);
    expect(own(s.exposures, "constructor")).toEqual([NOW]);

    const into = emptyState("u");
    mergeVisitorState(into, s, s.events, [], NOW, {});
    expect(own(into.counts, "constructor")!.reduce((n, [, c]) => n + c, 0)).toBe(2);
    expect(own(into.lastByType, "constructor")).toBe(NOW - HOUR);
    expect(own(into.exposures, "constructor")).toEqual([NOW]);
  });
});

describe("per-channel engagement hours", () => {
  it("count each channel's opens and clicks by hour, and add up when two visitors merge", () => {
    const phone = emptyState("anon");
    applyEvent(phone, event("sms_click", DAY + 3 * HOUR, {}, "sms"), null); // 09:00 UTC
    applyEvent(phone, event("sms_send", DAY + 4 * HOUR, {}, "sms"), null); // a send is not engagement
    const person = emptyState("u_1");
    applyEvent(person, event("sms_click", 2 * DAY + 3 * HOUR, {}, "sms"), null);
    applyEvent(person, event("email_open", DAY - HOUR, {}, "email"), null); // 13:00 UTC
    mergeVisitorState(person, phone, phone.events, [], NOW, {});
    expect(own(person.engagement, "sms")?.hours?.[9]).toBe(2);
    expect(own(person.engagement, "sms")?.hours?.reduce((a, b) => a + b, 0)).toBe(2);
    expect(own(person.engagement, "email")?.hours?.[13]).toBe(1);
    expect(person.engagementHours[9]).toBe(2);
  });
});

describe("trait merge strategies when two profiles are stitched", () => {
  it("mostRecent, oldest, add, firstNonEmpty, and no prototype keys", () => {
    const known = { firstName: "", tier: "silver", orders: 3, city: "Lyon", since: "2020" };
    const incoming = JSON.parse(
      '{"firstName":"Ana","tier":"gold","orders":2,"city":"Paris","since":"2024","__proto__":{"admin":true}}',
    );
    const merged = mergeTraits(known, incoming, { tier: "mostRecent", orders: "add", since: "oldest" });
    expect(merged).toEqual({ firstName: "Ana", tier: "gold", orders: 5, city: "Lyon", since: "2020" });
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });
});

describe("placements that exclude each other", () => {
  it("two placements in one group never both show an experience on a page", async () => {
    const rules = await compile({
      version: "g",
      placements: {
        top: { selector: "#top", group: "promo" },
        side: { selector: "#side", group: "promo" },
        free: { selector: "#free" },
      },
      experiences: [
        { id: "top-offer", placement: "top", content: { html: "top" } },
        { id: "side-offer", placement: "side", content: { html: "side" } },
        { id: "free-offer", placement: "free", content: { html: "free" } },
      ],
    });
    const r = decide(rules, {
      visitorId: "v",
      now: NOW,
      traits: {},
      state: null,
      context: context(),
      consent: {},
      explain: true,
    });
    const by = Object.fromEntries(r.decisions.map((d) => [d.placement, d]));
    expect(by.top?.experience).toBe("top-offer");
    expect(by.side).toMatchObject({ experience: null, reason: "EXCLUDED" });
    expect(by.free?.experience).toBe("free-offer");
    expect(r.explanation?.side?.[0]?.outcome).toBe("excluded");
  });
});
