/**
 * Ingest in the visitor's object, without the object: a visitor with months of mixed events arriving in
 * 20-event batches, each applied as the object applies a batch (applyEvent per event, prune, the
 * `meta.state` row serialized as it is written), under the bundled rules. Once counting only the types
 * the rules read through counters (docs/decisions.md, record 21), once counting every type arriving
 * (what ingest did before). Plain Node, one core.
 *
 * Run: `npm run bench -- ingest` or `node bench/ingest.bench.ts`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { applyEvent, DEFAULT_LIMITS, emptyState, prune, type Scoring } from "../src/core/visitor-state.ts";
import { compileRules, hashRules, parseRules } from "../src/rules/index.ts";
import { median, ROOT } from "./workerd.ts";

const TYPES = [
  "page_view",
  "page_view",
  "page_view",
  "product_view",
  "product_view",
  "search",
  "add_to_cart",
  "email_send",
  "email_open",
  "click",
  "scroll",
  "purchase",
];
const BATCHES = Number(process.env.BENCH_BATCHES ?? 1000);
const BATCH_SIZE = 20;

/** Events/s over BATCHES batches, a few events an hour, so the history spans months of hours. */
function ingest(scoring: Scoring) {
  const state = emptyState("v");
  let ts = Date.UTC(2026, 0, 1);
  let k = 0;
  const t0 = performance.now();
  for (let b = 0; b < BATCHES; b++) {
    for (let i = 0; i < BATCH_SIZE; i++) {
      ts += (7 + (k % 13)) * 60e3;
      const type = TYPES[k % TYPES.length]!;
      const props = { category: "running", path: "/p" };
      applyEvent(state, { id: `e${k++}`, type, ts, channel: "web", props }, scoring, DEFAULT_LIMITS);
    }
    prune(state, ts, DEFAULT_LIMITS);
    const { events: _events, ...row } = state;
    JSON.stringify(row);
  }
  const ms = performance.now() - t0;
  const buckets = Object.values(state.counts).reduce((n, b) => n + b.length, 0);
  const { events: _events, ...row } = state;
  return { perSecond: (BATCHES * BATCH_SIZE) / (ms / 1000), buckets, rowBytes: JSON.stringify(row).length };
}

export async function run(): Promise<string[]> {
  const parsed = parseRules(JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8")));
  if (!parsed.ok) throw new Error("the bundled rules do not validate");
  const rules = compileRules(parsed.rules, await hashRules(parsed.rules));
  const everyType: Scoring = { ...rules, countedTypes: new Set(TYPES) };
  const runs = { rules: [] as number[], every: [] as number[] };
  let last = { rules: ingest(rules), every: ingest(everyType) };
  // Interleaved, so a busy machine slows both alike.
  for (let r = 0; r < 5; r++) {
    last = { rules: ingest(rules), every: ingest(everyType) };
    runs.rules.push(last.rules.perSecond);
    runs.every.push(last.every.perSecond);
  }
  const line = (name: string, xs: number[], at: { buckets: number; rowBytes: number }) =>
    `${name}: ${median(xs).toFixed(0)} events/s (median of 5, ${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}); ${at.buckets} hourly buckets, state row ${(at.rowBytes / 1024).toFixed(1)} KB at the end`;
  return [
    `${BATCHES * BATCH_SIZE} events in ${BATCH_SIZE}-event batches, ${[...rules.countedTypes].sort().join(", ")} counted by the bundled rules`,
    line("counting the types the rules read", runs.rules, last.rules),
    line("counting every type (before record 21)", runs.every, last.every),
    `ratio: ${(median(runs.rules) / median(runs.every)).toFixed(2)}× the events/s`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
