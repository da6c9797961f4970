import { describe, expect, it } from "vitest";
import type { VisitorEvent } from "../../src/core/model.ts";
import {
  applyEvent,
  DEFAULT_LIMITS,
  emptyState,
  type MutableVisitorState,
  prune,
  type StateLimits,
} from "../../src/core/visitor-state.ts";
import { type Condition, newlyCounted, parseRules, type RulesDocument } from "../../src/rules/index.ts";
import { compile, DAY, event, experienceWins, HOUR } from "./helpers.ts";

// Ingest counts by the hour only the event types some condition reads through counters
// (docs/decisions.md, record 21); a windowed count reads the log, and the counters for what the log let go.

const doc = (version: string, audience?: Condition) => ({
  version,
  placements: { slot: { selector: "#slot" } },
  experiences: [{ id: "x", placement: "slot", ...(audience ? { audience } : {}), content: { html: "yes" } }],
});

const threePurchases: Condition = { countWithin: { event: "purchase", window: "30d" }, op: "gte", value: 3 };
/** A small log, so that a few page views push older events out of it. */
const smallLog: StateLimits = { ...DEFAULT_LIMITS, maxEvents: 10 };

function ingest(
  state: MutableVisitorState,
  events: VisitorEvent[],
  rules: Awaited<ReturnType<typeof compile>>,
  limits = smallLog,
) {
  for (const e of events) {
    applyEvent(state, e, rules, limits);
    prune(state, e.ts, limits);
  }
}

const pageViews = (count: number, from: number) =>
  Array.from({ length: count }, (_, i) => event("page_view", from - i * HOUR));

describe("the event types ingest counts", () => {
  it("counts a type a condition reads and leaves a type no condition reads uncounted", async () => {
    const rules = await compile(doc("v1", threePurchases));
    expect([...rules.countedTypes]).toEqual(["purchase"]);
    const state = emptyState("v");
    ingest(state, [event("page_view", 2 * DAY), event("purchase", 2 * DAY - 1000)], rules, DEFAULT_LIMITS);
    expect(Object.keys(state.counts)).toEqual(["purchase"]);
    expect(state.counts.purchase!.reduce((n, [, c]) => n + c, 0)).toBe(1);
  });

  it("counts both sides of a rate, and not the type of a filtered count, which reads the events", async () => {
    const rules = await compile(
      doc("v1", {
        all: [
          { rate: { of: "email_open", per: "email_send", within: "30d", gte: 0.5 } },
          {
            countWithin: {
              event: "product_view",
              window: "7d",
              where: { path: "event.props.category", op: "eq", value: "shoes" },
            },
            op: "gte",
            value: 1,
          },
        ],
      }),
    );
    expect([...rules.countedTypes].sort()).toEqual(["email_open", "email_send"]);
  });

  it("reads 3 purchases in 30 days after a busy visitor's page views pushed them out of the log", async () => {
    const rules = await compile(doc("v1", threePurchases));
    const state = emptyState("v");
    const purchases = [event("purchase", 20 * DAY), event("purchase", 15 * DAY), event("purchase", 10 * DAY)];
    ingest(state, [...purchases, ...pageViews(12, 9 * DAY).reverse()], rules);
    expect(state.events.some((e) => e.type === "purchase")).toBe(false);
    expect(await experienceWins(doc("v1", threePurchases), { state })).toBe(true);
  });

  it("a rule published after the purchases reads them right within the log's reach, and after they leave it", async () => {
    // Version 1 reads no purchase: the purchases are logged, not counted.
    const before = await compile(doc("v1"));
    const state = emptyState("v");
    const purchases = [event("purchase", 20 * DAY), event("purchase", 15 * DAY), event("purchase", 10 * DAY)];
    ingest(state, purchases, before);
    expect(state.counts.purchase).toBeUndefined();
    // Version 2 reads "3 purchases in 30 days": the log holds them all, the answer is right at once.
    const after = await compile(doc("v2", threePurchases));
    expect(await experienceWins(doc("v2", threePurchases), { state })).toBe(true);
    // Its first event starts the purchase counters from the log, so page views that push the
    // purchases out of the log leave the answer right.
    ingest(state, pageViews(12, 9 * DAY).reverse(), after);
    expect(state.events.some((e) => e.type === "purchase")).toBe(false);
    expect(await experienceWins(doc("v2", threePurchases), { state })).toBe(true);
    expect(state.counting).toEqual(["purchase"]);
  });

  it("drops the counters of a type the rules no longer read, and counts a window's events once", async () => {
    const reading = await compile(doc("v1", threePurchases));
    const state = emptyState("v");
    ingest(state, [event("purchase", 3 * DAY), event("purchase", 2 * DAY)], reading);
    ingest(state, pageViews(9, DAY).reverse(), reading);
    // Two purchases, one in the log, one only in the counters: 2, not 3.
    const twoPurchases: Condition = { countWithin: { event: "purchase", window: "30d" }, op: "eq", value: 2 };
    expect(await experienceWins(doc("v1", twoPurchases), { state })).toBe(true);
    ingest(state, [event("page_view", 0)], await compile(doc("v2")));
    expect(state.counts).toEqual({});
  });
});

const parsed = (json: unknown): RulesDocument => {
  const result = parseRules(json);
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.rules;
};

describe("rules diff on a condition that reads a type the old version did not count", () => {
  it("warns with the condition's path and the type; a type counted before gives no warning", () => {
    const before = parsed(doc("v1"));
    const after = parsed(doc("v2", threePurchases));
    expect(newlyCounted(before, after)).toEqual([
      expect.stringMatching(/^! experiences\[0\]\.audience: purchase not counted by version v1: /),
    ]);
    expect(newlyCounted(after, parsed(doc("v3", threePurchases)))).toEqual([]);
  });
});
