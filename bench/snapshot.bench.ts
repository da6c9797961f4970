/**
 * What a returning visitor's page carries back from its object call (docs/decisions.md, records 26
 * and 29): the snapshot's bytes and the time to copy it (v8's structured-clone serialization, the
 * format an RPC's copy is akin to), whole, as the decide API asks (the log trimmed to the rules'
 * horizon), and as a page asks (core/page-state.ts), for two visitors: the proxy bench's (a few
 * hundred page views within minutes on "/") and a busy one (four months of daily mail and browsing,
 * capped banners shown, a burst of pages today). Pure Node, no workerd: states are built by the same
 * core code the object runs.
 *
 * Run: `npm run bench -- snapshot` (or `node bench/snapshot.bench.ts`).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { deserialize, serialize } from "node:v8";
import type { VisitorEvent, VisitorState } from "../src/core/model.ts";
import { pageState } from "../src/core/page-state.ts";
import {
  applyEvent,
  DEFAULT_LIMITS,
  emptyState,
  firstAfter,
  type MutableVisitorState,
  prune,
  recordExposure,
} from "../src/core/visitor-state.ts";
import { type CompiledRules, compileRules, hashRules, parseRules } from "../src/rules/index.ts";
import { median, ROOT } from "./workerd.ts";

const HOUR = 3600e3;
const DAY = 24 * HOUR;
const NOW = Date.parse("2026-11-29T12:00:00Z");

async function rulesFor(which: "demo" | "hero"): Promise<CompiledRules> {
  const doc = JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8"));
  // As bench/proxy.bench.ts's hero rules: the banner and the featured shelf moved off "/".
  if (which === "hero") {
    doc.placements["promo-banner"].pages = ["/running", "/hiking", "/cart"];
    doc.placements.featured.pages = ["/cart"];
  }
  const parsed = parseRules(doc);
  if (!parsed.ok) throw new Error("rules invalid");
  return compileRules(parsed.rules, await hashRules(parsed.rules));
}

let n = 0;
const event = (type: string, ago: number, props: Record<string, unknown>, channel = "web"): VisitorEvent => ({
  id: `e${++n}`,
  type,
  ts: NOW - ago,
  channel,
  props,
});

function stateOf(rules: CompiledRules, events: VisitorEvent[]): MutableVisitorState {
  const state = emptyState("v-bench");
  for (const e of events.sort((a, b) => a.ts - b.ts)) applyEvent(state, e, rules);
  prune(state, NOW, DEFAULT_LIMITS);
  return state;
}

/** The proxy bench's returning visitor: its pages on "/", a few a second. */
function benchVisitor(rules: CompiledRules): MutableVisitorState {
  const events: VisitorEvent[] = [];
  for (let i = 0; i < 600; i++)
    events.push(event("page_view", i * 500, { url: "http://127.0.0.1/", path: "/" }));
  return stateOf(rules, events);
}

/** Four months of a busy shopper and reader: mail daily, browsing, carts, capped banners shown. */
function busyVisitor(rules: CompiledRules): MutableVisitorState {
  const events: VisitorEvent[] = [];
  const categories = ["running", "hiking", "camp"];
  for (let day = 0; day < 120; day++) {
    // An hour back at least: every event before the decision.
    const at = day * DAY + (day % 13) * HOUR + HOUR;
    events.push(event("email_send", at + 1, { campaign: `c${day}` }, "email"));
    if (day % 2 === 0) events.push(event("email_open", at, { campaign: `c${day}` }, "email"));
    if (day % 5 === 0) events.push(event("email_click", at - 1, { campaign: `c${day}` }, "email"));
    for (let v = 0; v < 6; v++) {
      const category = categories[(day + v) % 3]!;
      events.push(
        event("page_view", at - v * 60e3 - 2, {
          path: `/${category}`,
          url: `https://shop.example/${category}`,
        }),
      );
      events.push(event("product_view", at - v * 60e3 - 3, { category, tags: [category, "trail"] }));
    }
    if (day % 7 === 0) events.push(event("add_to_cart", at - 400e3, { category: "running" }));
  }
  // Today: a burst of pages that cuts the log within the day.
  for (let v = 0; v < 520; v++) events.push(event("page_view", v * 30e3 + 3, { path: "/running" }));
  const state = stateOf(rules, events);
  for (const id of ["cart-reminder", "browse-reminder", "first-visit-offer"])
    for (let i = 0; i < 20; i++) recordExposure(state, id, NOW - i * 3 * HOUR);
  return state;
}

/** Serialized bytes and the median µs to serialize and deserialize it once. */
function copyCost(value: unknown): { bytes: number; us: number } {
  const bytes = serialize(value).length;
  const times: number[] = [];
  for (let round = 0; round < 21; round++) {
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) deserialize(serialize(value));
    times.push(((performance.now() - t0) * 1000) / 200);
  }
  return { bytes, us: median(times) };
}

export async function run(): Promise<string[]> {
  const lines = [
    "what a returning page's snapshot carries: v8-serialized bytes (µs to serialize + deserialize, median of 21×200)",
    "visitor  rules  path   whole              decide API (log trimmed)  page (record 29)",
  ];
  for (const which of ["hero", "demo"] as const) {
    const rules = await rulesFor(which);
    for (const [name, state] of [
      ["bench", benchVisitor(rules)],
      ["busy", busyVisitor(rules)],
    ] as const) {
      for (const path of which === "hero" ? ["/"] : ["/", "/running", "/cart"]) {
        const page = rules.pageForPath(path);
        const since = NOW - page.eventHorizonMs;
        const api: VisitorState = { ...state, events: state.events.slice(firstAfter(state.events, since)) };
        const cells = [state, api, pageState(state, NOW, since, page.reads)].map((value) => {
          const { bytes, us } = copyCost(value);
          return `${String(bytes).padStart(7)} B (${us.toFixed(1).padStart(5)} µs)`;
        });
        lines.push(`${name.padEnd(8)} ${which.padEnd(6)} ${path.padEnd(6)} ${cells.join("  ")}`);
      }
    }
  }
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
