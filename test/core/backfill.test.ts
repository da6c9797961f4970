import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { backfillHistory } from "../../src/core/backfill.ts";
import type { VisitorEvent } from "../../src/core/model.ts";
import { applyEvent, emptyState, type MutableVisitorState } from "../../src/core/visitor-state.ts";
import type { CompiledRules } from "../../src/rules/index.ts";
import { compile, DAY, HOUR, MIN, NOW } from "./helpers.ts";

const demoRules = () => compile(JSON.parse(readFileSync("rules/northstar.rules.json", "utf8")));

/** A person's two months: visits with gaps under and over 30 minutes, carts past the cap, email. */
function history(): VisitorEvent[] {
  const events: VisitorEvent[] = [];
  let n = 0;
  const add = (type: string, ts: number, props: Record<string, unknown> = {}, channel = "web") =>
    events.push({ id: `h${++n}`, type, ts, channel, props });
  for (let day = 60; day >= 1; day -= 3) {
    const start = NOW - day * DAY + 9 * HOUR;
    add("email_send", start - 2 * HOUR, {}, "email");
    if (day % 2 === 0) add("email_open", start - HOUR, {}, "email");
    add("page_view", start, { path: "/running" });
    add("product_view", start + 10 * MIN, { category: day % 9 === 0 ? "hiking" : "running" });
    add("page_view", start + 50 * MIN, { path: "/sale" }); // 40 minutes on: a second session
  }
  // Fourteen carts in one evening: the running score reaches its cap (100) and stays clipped.
  for (let i = 0; i < 14; i++) add("add_to_cart", NOW - 2 * DAY + i * MIN, { category: "running" });
  add("purchase", NOW - 2 * DAY + 20 * MIN, { value: 120 });
  return events;
}

function live(events: readonly VisitorEvent[], scoring: CompiledRules): MutableVisitorState {
  const state = emptyState("v");
  for (const event of [...events].sort((a, b) => a.ts - b.ts)) applyEvent(state, event, scoring);
  return state;
}

/** A fixed shuffle (a linear congruential generator), so a failure is the same on every run. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe("backfilled history", () => {
  it("gives the state of the same history arrived live in time order, however it is split and shuffled", async () => {
    const scoring = await demoRules();
    const events = history();
    const expected = live(events, scoring);
    for (const seed of [1, 7, 42]) {
      const order = shuffled(events, seed);
      const cut = (seed * 13) % order.length;
      const state = emptyState("v");
      backfillHistory(state, order.slice(0, cut), scoring);
      backfillHistory(state, order.slice(cut), scoring);
      expect(state).toEqual(expected);
    }
    expect(expected.intent.running!.value).toBe(100); // the cap was reached: the hard case
    expect(expected.sessionCount).toBeGreaterThan(20);
  });

  it("older history sent after recent live events gives the same state as all of it arriving live", async () => {
    const scoring = await demoRules();
    const events = history();
    const recent = events.filter((e) => e.ts >= NOW - 3 * DAY);
    const older = events.filter((e) => e.ts < NOW - 3 * DAY);
    const state = live(recent, scoring);
    backfillHistory(state, shuffled(older, 3), scoring);
    expect(state).toEqual(live(events, scoring));
  });

  it("newer events than everything held apply as live ones, in time order", async () => {
    const scoring = await demoRules();
    const events = history();
    const state = live(events.slice(0, 10), scoring);
    backfillHistory(state, shuffled(events.slice(10), 5), scoring);
    expect(state).toEqual(live(events, scoring));
  });

  it("keeps what came before the kept log: counters and sessions of events it already let go", async () => {
    const scoring = await demoRules();
    const events = history();
    const state = live(events, scoring);
    // The log let go of everything before 20 days ago; counters, sessions and last times remember it.
    state.events = state.events.filter((e) => e.ts >= NOW - 20 * DAY);
    const before = structuredClone(state);
    const extra: VisitorEvent = {
      id: "crm-1",
      type: "email_open",
      ts: NOW - 10 * DAY,
      channel: "email",
      props: {},
    };
    backfillHistory(state, [extra], scoring);
    expect(state.sessionCount).toBe(before.sessionCount); // an open is not a visit
    expect(state.engagement.email!.opens).toBe(before.engagement.email!.opens + 1);
    expect(state.counts.page_view).toEqual(before.counts.page_view);
    expect(state.intent).toEqual(before.intent); // an open scores nothing in these rules
    expect(state.events.map((e) => e.id)).toContain("crm-1");
  });
});
