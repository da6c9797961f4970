/**
 * decide() at scale: the demo rules' shapes scaled to 200 experiences over 20 placements, against a
 * visitor with a 500-event history. Plain Node, one core; budget p99 ≤ 100 µs (docs: DESIGN.md).
 * The audience workload alone and the json-rules-engine reference are in bench/rules.bench.ts,
 * which reuses the scaled document and history below.
 *
 * Run: `npm run bench -- decide` or `node bench/decide.bench.ts`.
 */
import { decide } from "../src/core/decide.ts";
import type { RequestContext, VisitorEvent } from "../src/core/model.ts";
import { applyEvent, emptyState } from "../src/core/visitor-state.ts";
import { compileRules, hashRules, parseRules } from "../src/rules/index.ts";

export const NOW = Date.parse("2026-11-22T12:00:00Z");
const TYPES = ["page_view", "product_view", "add_to_cart", "search", "email_open", "purchase"];
const CATEGORIES = ["running", "hiking", "trail", "camp"];

export function scaledDoc() {
  const placements: Record<string, unknown> = {};
  for (let p = 0; p < 20; p++) placements[`slot-${p}`] = { selector: `#slot-${p}`, pages: ["*"] };
  const experiences = [];
  for (let i = 0; i < 200; i++) {
    const cat = CATEGORIES[i % 4]!;
    const audiences = [
      {
        all: [
          { op: "eq", path: "traits.tier", value: i % 3 === 0 ? "gold" : "silver" },
          { intent: { dimension: cat, above: i % 7 } },
        ],
      },
      {
        countWithin: { event: TYPES[i % TYPES.length]!, window: `${1 + (i % 14)}d` },
        op: "gte",
        value: 3 + (i % 20),
      },
      { silence: { after: "add_to_cart", without: ["purchase"], for: `${5 + i}m` } },
      {
        any: [
          { op: "in", path: "context.query.utm_campaign", value: [`c${i}`, `c${i + 1}`] },
          { op: "gte", path: "traits.lifetimeValue", value: 100 * i },
        ],
      },
      { segment: `seg-${i % 10}` },
    ];
    experiences.push({
      id: `x-${i}`,
      placement: `slot-${i % 20}`,
      priority: 200 - i,
      audience: audiences[i % audiences.length],
      caps: i % 4 === 0 ? [{ max: 3, per: "1d" }] : [],
      content: {
        html: `<div class="x${i}">Hello {{ traits.firstName | default: "there" }}, offer ${i}</div>`,
      },
    });
  }
  const segments: Record<string, unknown> = {};
  for (let s = 0; s < 10; s++) {
    segments[`seg-${s}`] = {
      condition: {
        all: [
          {
            countWithin: {
              event: "product_view",
              window: "7d",
              where: { path: "event.props.category", op: "eq", value: CATEGORIES[s % 4] },
            },
            op: "gte",
            value: s,
          },
          { op: "exists", path: "traits.firstName" },
        ],
      },
    };
  }
  const dimensions = Object.fromEntries(CATEGORIES.map((c) => [c, { halfLife: "7d", cap: 100 }]));
  const signals = CATEGORIES.map((c) => ({
    id: `sig-${c}`,
    event: "product_view",
    when: { op: "eq", path: "event.props.category", value: c },
    add: { [c]: 2 },
  }));
  return { version: "bench", dimensions, signals, segments, placements, experiences };
}

export function history(rules: Parameters<typeof applyEvent>[2]) {
  const s = emptyState("bench-visitor");
  for (let i = 0; i < 500; i++) {
    const e: VisitorEvent = {
      id: `e${i}`,
      type: TYPES[i % TYPES.length]!,
      ts: NOW - (500 - i) * 40 * 60e3,
      channel: "web",
      props: { category: CATEGORIES[i % 4], path: `/p/${i}`, tags: [CATEGORIES[i % 4]!, "x"] },
    };
    applyEvent(s, e, rules);
  }
  return s;
}

export const benchContext: RequestContext = {
  channel: "web",
  url: "https://shop.example/running?utm_campaign=c7",
  path: "/running",
  query: { utm_campaign: "c7" },
  referrer: null,
  geo: { country: "FR", region: null, city: null, timezone: "Europe/Paris" },
  device: "desktop",
  locale: "fr-FR",
  userAgent: null,
  custom: {},
};

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export async function run(): Promise<string[]> {
  const lines: string[] = [];
  const compileStart = performance.now();
  const parsed = parseRules(scaledDoc());
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors.slice(0, 3)));
  const rules = compileRules(parsed.rules, await hashRules(parsed.rules));
  lines.push(
    `scaled rules (200 experiences, 20 placements): validate+hash+compile ${(performance.now() - compileStart).toFixed(1)} ms`,
  );
  const state = history(rules);
  const traits = { firstName: "Ana", tier: "gold", lifetimeValue: 900 };
  const input = { visitorId: "bench-visitor", now: NOW, traits, state, context: benchContext, consent: {} };

  for (const [label, explain] of [
    ["decide()", false],
    ["decide() with explain", true],
  ] as const) {
    for (let i = 0; i < 3000; i++) decide(rules, { ...input, explain });
    const samples: number[] = [];
    const rounds = 20_000;
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) {
      const s = performance.now();
      decide(rules, { ...input, explain });
      samples.push((performance.now() - s) * 1000);
    }
    const elapsed = performance.now() - t0;
    samples.sort((a, b) => a - b);
    const decided = decide(rules, input);
    lines.push(
      `${label}: 200 experiences, 20 placements, 500-event history: p50 ${percentile(samples, 0.5).toFixed(1)} µs, p99 ${percentile(samples, 0.99).toFixed(1)} µs${explain ? "" : " (budget 100)"}, ${Math.round(rounds / (elapsed / 1000))} decisions/s on one core; ${decided.decisions.filter((d) => d.experience).length}/20 placements personalized`,
    );
  }
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
