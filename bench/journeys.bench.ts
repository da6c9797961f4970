/**
 * The cost journeys add to ingest: the trigger check the visitor's object runs after storing a batch
 * (src/rules/journey-triggers.ts `entriesFor`, plus the scan for events running journeys listen to),
 * per event, against the in-memory work ingest already does per event (`applyEvent`: counters,
 * scores, engagement). With the demo's rules: one event trigger (add_to_cart) and one segment
 * trigger (win-back: an inactivity, which no batch can make true, so it is left to the schedule). Storage and the RPC hop are left out of both sides,
 * so the ratio overstates the slowdown of a real ingest, which also writes SQLite and crosses an RPC.
 * And what a trait write adds (src/state/traits-written.ts): picking the traits triggers read out of a
 * CRM profile, and the object's trigger check with them, with two trait-triggered journeys added.
 *
 * Run: `npm run bench -- journeys` or `node bench/journeys.bench.ts`.
 */
import { readFileSync } from "node:fs";
import type { VisitorEvent } from "../src/core/model.ts";
import { applyEvent, emptyState } from "../src/core/visitor-state.ts";
import { compileRules, parseRules } from "../src/rules/index.ts";
import { pickTraits } from "../src/rules/journey-traits.ts";
import { entriesFor } from "../src/rules/journey-triggers.ts";

const RUNS = 7;
const BATCHES = Number(process.env.BENCH_BATCHES ?? 500);
const BATCH_SIZE = 20;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Median ns per event over `RUNS` timed runs (after a warm-up). */
function nsPerEvent(fn: (batch: number) => void): number {
  const once = () => {
    const start = performance.now();
    for (let b = 0; b < BATCHES; b++) fn(b);
    return ((performance.now() - start) * 1e6) / (BATCHES * BATCH_SIZE);
  };
  once();
  return median(Array.from({ length: RUNS }, once));
}

export async function run(): Promise<string[]> {
  const parsed = parseRules(
    JSON.parse(readFileSync(new URL("../rules/northstar.rules.json", import.meta.url), "utf8")),
  );
  if (!parsed.ok) throw new Error("the demo rules are invalid");
  const rules = compileRules(parsed.rules, "bench");
  const now = Date.parse("2026-11-22T12:00:00Z");
  // The object's entries, answering "never entered" (the trigger path's one read, when a trigger fires).
  const latestEntry = () => null;
  const batch = (type: string, b: number): VisitorEvent[] =>
    Array.from({ length: BATCH_SIZE }, (_, i) => ({
      id: `${type}-${b}-${i}`,
      type,
      ts: now + b * 1000 + i,
      channel: "web",
      props: { category: i % 2 ? "running" : "hiking", path: "/running" },
    }));
  const views = Array.from({ length: 64 }, (_, b) => batch("product_view", b));
  const carts = Array.from({ length: 64 }, (_, b) => batch("add_to_cart", b));
  const state = emptyState("bench-visitor");
  for (const event of views[0]!) applyEvent(state, event, rules);

  const check = (fresh: VisitorEvent[]) => {
    const journeys = rules.journeys;
    if (fresh.some((event) => journeys.listens.has(event.type))) {
      // Forwarding reads the running entries: none here.
    }
    return entriesFor(rules, fresh, state, latestEntry, now, "batch");
  };
  // On a new visitor's state each batch: the cheapest ingest there is, so the ratio is an upper bound.
  const ingestWork = nsPerEvent((b) => {
    const fresh = emptyState("bench-visitor");
    for (const event of views[b % 64]!) applyEvent(fresh, event, rules);
  });
  const quiet = nsPerEvent((b) => check(views[b % 64]!));
  const triggering = nsPerEvent((b) => check(carts[b % 64]!));

  // A trait write: the demo's rules plus a VIP welcome (traits.tier) and a lapsed-buyer offer
  // (traits.lastOrderAt olderThan 60d), a 40-trait CRM profile, a person who never entered.
  const withTraits = parseRules({
    ...parsed.rules,
    journeys: {
      ...parsed.rules.journeys,
      "vip-welcome": {
        trigger: { condition: { op: "eq", path: "traits.tier", value: "gold" } },
        steps: [{ id: "welcome", send: { via: [{ channel: "email", placement: "email-hero" }] } }],
      },
      "lapsed-buyer-offer": {
        trigger: { segment: "lapsed-buyer" },
        steps: [{ id: "offer", send: { via: [{ channel: "email", placement: "email-hero" }] } }],
      },
    },
  });
  if (!withTraits.ok) throw new Error(JSON.stringify(withTraits.errors));
  const traitRules = compileRules(withTraits.rules, "bench-traits");
  const names = traitRules.journeys.traits.names;
  const profiles = Array.from({ length: 64 }, (_, p) => ({
    ...Object.fromEntries(Array.from({ length: 38 }, (_, k) => [`crm_field_${k}`, `value ${p}-${k}`])),
    tier: p % 4 ? "silver" : "gold",
    lastOrderAt: new Date(now - (p % 90) * 86400e3).toISOString(),
  }));
  const perCall = (fn: (i: number) => void): number => {
    const once = () => {
      const start = performance.now();
      for (let i = 0; i < BATCHES * BATCH_SIZE; i++) fn(i);
      return ((performance.now() - start) * 1e6) / (BATCHES * BATCH_SIZE);
    };
    once();
    return median(Array.from({ length: RUNS }, once));
  };
  const picking = perCall((i) => pickTraits(profiles[i % 64]!, names));
  const picked = profiles.map((profile) => pickTraits(profile, names));
  const traitCheck = perCall((i) =>
    entriesFor(traitRules, [], state, latestEntry, now, "schedule", picked[i % 64]!),
  );
  return [
    `ingest's in-memory work per event (applyEvent, demo rules): ${ingestWork.toFixed(0)} ns`,
    `trigger check per event, a batch no journey starts on (product_view): ${quiet.toFixed(0)} ns = ${((quiet / ingestWork) * 100).toFixed(1)}% of it`,
    `trigger check per event, a batch that starts cart abandonment (add_to_cart; the entry lookup, one SQLite read, not included): ${triggering.toFixed(0)} ns = ${((triggering / ingestWork) * 100).toFixed(1)}% of it`,
    `a trait write: picking the ${names.size} traits triggers read from a 40-trait profile: ${picking.toFixed(0)} ns; the object's trigger check with them (3 state triggers; a quarter of these people are gold, a third lapsed buyers): ${traitCheck.toFixed(0)} ns (the RPC and the entry's SQLite write not included)`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
