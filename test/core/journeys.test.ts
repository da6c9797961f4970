import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { channelOrder, nextHourAt, quietUntil } from "../../src/core/journey-time.ts";
import { marketingAllowed } from "../../src/core/privacy.ts";
import { emptyState } from "../../src/core/visitor-state.ts";
import { compileRules, parseRules } from "../../src/rules/index.ts";
import { nextTraitChange, pickTraits } from "../../src/rules/journey-traits.ts";
import { entriesFor } from "../../src/rules/journey-triggers.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const demo = JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8"));

// biome-ignore lint/suspicious/noExplicitAny: the tests reach into arbitrary parts of a JSON document
type Doc = Record<string, any>;

function withJourney(journey: Doc): unknown {
  const doc = structuredClone(demo) as Doc;
  doc.journeys = { probe: journey };
  return doc;
}

function errorsOf(json: unknown): Array<{ path: string; message: string }> {
  const r = parseRules(json);
  return r.ok ? [] : r.errors;
}

const send = { send: { via: [{ channel: "sms", placement: "sms-text" }] } };

describe("journeys in the rules", () => {
  it("a branch back to an earlier step is refused, named by its path", () => {
    const errors = errorsOf(
      withJourney({
        trigger: { event: "add_to_cart" },
        steps: [
          { id: "first", ...send },
          { id: "again", branch: { if: { segment: "runner" }, goTo: "first" } },
        ],
      }),
    );
    expect(errors).toContainEqual({
      path: "journeys.probe.steps[1].branch.goTo",
      message: '"first" is not a later step: journeys never loop',
    });
  });

  it("unknown placements, segments and step names are named by their paths", () => {
    const errors = errorsOf(
      withJourney({
        trigger: { segment: "no-such-segment" },
        steps: [
          { id: "x", send: { via: [{ channel: "sms", placement: "no-such-placement" }] } },
          { id: "x", branch: { if: { segment: "runner" }, goTo: "nowhere" } },
        ],
      }),
    ).map((e) => e.path);
    expect(errors).toEqual(
      expect.arrayContaining([
        "journeys.probe.trigger.segment",
        "journeys.probe.steps[0].send.via[0].placement",
        "journeys.probe.steps[1].id",
        "journeys.probe.steps[1].branch.goTo",
      ]),
    );
  });

  it("a step of no known kind is refused by the schema, at its path", () => {
    const errors = errorsOf(
      withJourney({ trigger: { event: "add_to_cart" }, steps: [{ id: "x", teleport: true }] }),
    );
    expect(errors.map((e) => e.path)).toContain("journeys.probe.steps[0]");
  });

  it("compiles the demo's journeys: which events trigger, which reach running ones, the shared cap", async () => {
    const parsed = parseRules(demo);
    if (!parsed.ok) throw new Error("demo rules invalid");
    const journeys = compileRules(parsed.rules, "h").journeys;
    expect([...journeys.triggerEvents]).toEqual(["add_to_cart"]);
    expect(journeys.stateTriggered.map((j) => j.id)).toEqual(["win-back"]);
    // Only time can make an inactivity true: ingest leaves it to the object's schedule.
    expect(journeys.stateTriggered[0]!.timeOnly).toBe(true);
    expect([...journeys.listens]).toEqual(["purchase"]);
    expect(journeys.messaging).toMatchObject({ capMax: 2, capPerMs: 86400e3, quiet: null, dryRun: false });
    // win-back is the lapsing segment: 60 days of inactivity at the shortest.
    expect(journeys.stateCheckMs).toBe(60 * 86400e3);
  });
});

describe("triggers that read traits", () => {
  const DAY = 86400e3;
  function compiled(journeys: Doc) {
    const doc = structuredClone(demo) as Doc;
    doc.journeys = journeys;
    const parsed = parseRules(doc);
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    return compileRules(parsed.rules, "h");
  }
  const welcome = { id: "welcome", send: { via: [{ channel: "email", placement: "email-hero" }] } };

  it("names the traits triggers read, through segments and an event's where, and the date comparisons of state triggers only", () => {
    const rules = compiled({
      vip: { trigger: { condition: { op: "eq", path: "traits.tier", value: "gold" } }, steps: [welcome] },
      lapsed: { trigger: { segment: "lapsed-buyer" }, steps: [welcome] },
      big: {
        trigger: { event: "add_to_cart", where: { op: "within", path: "traits.signedUpAt", value: "7d" } },
        steps: [welcome],
      },
    });
    const traits = rules.journeys.traits;
    expect([...traits.names].sort()).toEqual(["lastOrderAt", "signedUpAt", "tier"]);
    expect(traits.dates).toEqual([{ path: ["lastOrderAt"], afterMs: 60 * DAY }]);
    expect(pickTraits({ tier: "gold", firstName: "Ana" }, traits.names)).toEqual({ tier: "gold" });
  });

  it("a trait date 59 days old turns in a day; one already past, or not a date, schedules nothing", () => {
    const dates = [{ path: ["lastOrderAt"], afterMs: 60 * DAY }];
    const now = Date.parse("2026-11-29T12:00:00Z");
    expect(nextTraitChange(dates, { lastOrderAt: "2026-10-01T12:00:00Z" }, now)).toBe(
      Date.parse("2026-11-30T12:00:00Z"),
    );
    expect(nextTraitChange(dates, { lastOrderAt: "2026-09-01" }, now)).toBeNull();
    expect(nextTraitChange(dates, { lastOrderAt: "last spring" }, now)).toBeNull();
  });

  it("a condition on a trait starts its journey when the traits given hold, and not without them", () => {
    const rules = compiled({
      vip: { trigger: { condition: { op: "eq", path: "traits.tier", value: "gold" } }, steps: [welcome] },
    });
    const now = Date.now();
    const state = emptyState("u_x");
    const never = () => null;
    expect(entriesFor(rules, [], state, never, now, "schedule")).toEqual([]);
    expect(entriesFor(rules, [], state, never, now, "schedule", { tier: "gold" })).toEqual([
      { journey: "vip", cause: `state-${now}` },
    ]);
  });
});

describe("a message's hour and channel", () => {
  const at = (iso: string) => Date.parse(iso);

  it("the next best hour is today's when still ahead, tomorrow's when past, now when within it", () => {
    expect(nextHourAt(at("2026-11-22T10:30:00Z"), 18, 60)).toBe(at("2026-11-22T17:00:00Z"));
    expect(nextHourAt(at("2026-11-22T19:30:00Z"), 18, 60)).toBe(at("2026-11-23T17:00:00Z"));
    expect(nextHourAt(at("2026-11-22T17:20:00Z"), 18, 60)).toBe(at("2026-11-22T17:20:00Z"));
  });

  it("quiet hours across midnight end at their local end; outside them nothing waits", () => {
    const quiet = { from: 21 * 60, to: 8 * 60 };
    expect(quietUntil(at("2026-11-22T22:30:00Z"), quiet, 0)).toBe(at("2026-11-23T08:00:00Z"));
    expect(quietUntil(at("2026-11-23T05:00:00Z"), quiet, 60)).toBe(at("2026-11-23T07:00:00Z"));
    expect(quietUntil(at("2026-11-22T12:00:00Z"), quiet, 0)).toBeNull();
  });

  it("the preferred channel goes first, the others keep the step's order", () => {
    const engaged = { sms: { sends: 3, opens: 0, clicks: 2, lastAt: null } };
    expect(channelOrder(["email", "push", "sms"], engaged)).toEqual(["sms", "email", "push"]);
    expect(channelOrder(["email", "push"], engaged)).toEqual(["email", "push"]);
  });

  it("marketing needs the marketing purpose; a channel refused on its own is skipped", () => {
    const facts = (consent: Record<string, boolean>, mode: "opt-in" | "opt-out" = "opt-out") => ({
      mode,
      gpc: false,
      consent,
      erased: false,
    });
    expect(marketingAllowed(facts({}), "sms")).toBe(true);
    expect(marketingAllowed(facts({}, "opt-in"), "sms")).toBe(false);
    expect(marketingAllowed(facts({ marketing: false }), "sms")).toBe(false);
    expect(marketingAllowed(facts({ marketing_sms: false }), "sms")).toBe(false);
    expect(marketingAllowed(facts({ marketing_sms: false }), "email")).toBe(true);
    expect(marketingAllowed({ ...facts({}), erased: true })).toBe(false);
  });
});
