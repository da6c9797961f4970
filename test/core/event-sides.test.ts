import { describe, expect, it } from "vitest";
import { decide } from "../../src/core/decide.ts";
import { eventSides } from "../../src/core/event-sides.ts";
import { FixtureSchema, runFixture } from "../../src/rules/fixtures.ts";
import { parseRules } from "../../src/rules/index.ts";
import { compile, context, DAY, event, HOUR, MIN, NOW, stateOf } from "./helpers.ts";

/**
 * Visits, brand sends and responses (src/core/event-sides.ts): sessions count visits only, and
 * inactivity counts what the person did, never what the brand sent them.
 */

const quietRules = (settings: Record<string, unknown> = {}) =>
  compile({
    version: "sides-1",
    settings,
    conditions: { returning: { op: "gte", path: "visitor.sessionCount", value: 2 } },
    segments: {
      quiet: { condition: { inactive: { for: "3d" } } },
      returning: { condition: { ref: "returning" } },
    },
    placements: { banner: { selector: "#b" } },
    experiences: [
      { id: "come-back", placement: "banner", audience: { segment: "quiet" }, content: { html: "x" } },
    ],
  });

const fixture = (over: Record<string, unknown>) =>
  FixtureSchema.parse({ name: "case", now: "2026-11-22T10:00:00Z", expect: {}, ...over });

describe("visits, brand sends and responses", () => {
  it("a page view six days ago plus an email_send yesterday is inactive: 3d", async () => {
    const rules = await quietRules();
    const story = fixture({
      events: [
        { type: "page_view", ago: "6d" },
        { type: "email_send", ago: "1d", channel: "email" },
      ],
      expect: { segments: ["quiet"], decisions: { banner: "come-back" } },
    });
    expect(runFixture(rules, story)).toEqual([]);
  });

  it("an email opened yesterday after a page view six days ago is not inactive: 3d", async () => {
    const rules = await quietRules();
    const story = fixture({
      events: [
        { type: "page_view", ago: "6d" },
        { type: "email_open", ago: "1d", channel: "email" },
      ],
      expect: { segments: [], decisions: { banner: null } },
    });
    expect(runFixture(rules, story)).toEqual([]);
  });

  it("visitor.lastSeen is the person's last activity, not the brand's last send", async () => {
    const rules = await quietRules();
    const state = stateOf([event("page_view", 6 * DAY), event("email_send", DAY, {}, "email")], rules);
    expect(state.lastSeen).toBe(NOW - 6 * DAY);
    const seen = await compile({
      version: "seen-1",
      segments: {
        "seen-in-3d": { condition: { op: "gte", path: "visitor.lastSeen", value: NOW - 3 * DAY } },
        "seen-in-7d": { condition: { op: "gte", path: "visitor.lastSeen", value: NOW - 7 * DAY } },
      },
    });
    const input = { visitorId: "v", now: NOW, traits: {}, consent: {}, state, context: context() };
    expect(decide(seen, input).segments).toEqual(["seen-in-7d"]);
  });

  it("sessions count visits only: five sends and two opens before the first page view make one session", async () => {
    const rules = await quietRules();
    const sends = [20, 15, 10, 5, 2].map((days) => event("email_send", days * DAY, {}, "email"));
    const opens = [15, 2].map((days) => event("email_open", days * DAY - 10 * MIN, {}, "email"));
    const state = stateOf([...sends, ...opens, event("page_view", 2 * MIN), event("page_view", MIN)], rules);
    expect(state.sessionCount).toBe(1);
    expect(state.firstSeen).toBe(NOW - (15 * DAY - 10 * MIN)); // the first open: the person's first activity
  });

  it("a type the rules add to the visits starts sessions; one moved to the brand sends is not activity", async () => {
    const rules = await quietRules({ eventSides: { visits: ["kiosk_scan"], brandSends: ["email_open"] } });
    const state = stateOf(
      [event("kiosk_scan", 2 * DAY, {}, "kiosk"), event("kiosk_scan", HOUR, {}, "kiosk")],
      rules,
    );
    expect(state.sessionCount).toBe(2);
    const opened = fixture({
      events: [
        { type: "page_view", ago: "6d" },
        { type: "email_open", ago: "1d", channel: "email" },
      ],
      expect: { segments: ["quiet"] },
    });
    expect(runFixture(rules, opened)).toEqual([]);
  });

  it("a type listed on two sides is refused, naming the list", () => {
    const parsed = parseRules({
      version: "v1",
      settings: { eventSides: { visits: ["kiosk_scan"], responses: ["kiosk_scan"] } },
    });
    expect(parsed.ok).toBe(false);
    expect(JSON.stringify(parsed)).toContain("kiosk_scan is already listed in visits");
  });

  it("the defaults cover the demo's types, and an added type leaves its default list", () => {
    const sides = eventSides({ responses: ["email_delivered"] });
    expect([...eventSides().visits]).toEqual(expect.arrayContaining(["page_view", "product_view"]));
    expect(eventSides().brandSends.has("email_send")).toBe(true);
    expect(eventSides().responses.has("email_open")).toBe(true);
    expect(sides.brandSends.has("email_delivered")).toBe(false);
    expect(sides.responses.has("email_delivered")).toBe(true);
  });
});
