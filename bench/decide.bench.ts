/**
 * decide() at scale: the demo rules' shapes scaled to 20, 200 and 2,000 experiences over 20
 * placements, against a visitor with a 500-event history, as a page asks (no segment list), as the
 * API asks (the visitor's segments listed) and with explanation. Plain Node, one core; budget p99 ≤
 * 100 µs at 200 (docs: DESIGN.md).
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

export function scaledDoc(experienceCount = 200) {
  const placements: Record<string, unknown> = {};
  for (let p = 0; p < 20; p++) placements[`slot-${p}`] = { selector: `#slot-${p}`, pages: ["*"] };
  const experiences = [];
  for (let i = 0; i < experienceCount; i++) {
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

/** p50 and p99 in µs of `rounds` calls after a warm-up, and calls per second on one core. */
function measure(call: () => unknown, rounds: number): { p50: number; p99: number; perSecond: number } {
  for (let i = 0; i < Math.min(3000, rounds); i++) call();
  const samples: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) {
    const s = performance.now();
    call();
    samples.push((performance.now() - s) * 1000);
  }
  const elapsed = performance.now() - t0;
  samples.sort((a, b) => a - b);
  return {
    p50: percentile(samples, 0.5),
    p99: percentile(samples, 0.99),
    perSecond: Math.round(rounds / (elapsed / 1000)),
  };
}

export async function run(): Promise<string[]> {
  const lines: string[] = [];
  for (const count of [20, 200, 2000]) {
    const compileStart = performance.now();
    const parsed = parseRules(scaledDoc(count));
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors.slice(0, 3)));
    const rules = compileRules(parsed.rules, await hashRules(parsed.rules));
    lines.push(
      `${count} experiences, 20 placements: validate+hash+compile ${(performance.now() - compileStart).toFixed(1)} ms`,
    );
    const state = history(rules);
    const traits = { firstName: "Ana", tier: "gold", lifetimeValue: 900 };
    const input = { visitorId: "bench-visitor", now: NOW, traits, state, context: benchContext, consent: {} };
    const rounds = count >= 2000 ? 4000 : 20_000;
    const decided = decide(rules, { ...input, segments: false });
    for (const [label, options] of [
      ["as a page asks (no segment list)", { segments: false }],
      ["as the API asks (segments listed)", { segments: true }],
      ["with explain", { segments: true, explain: true }],
    ] as const) {
      const m = measure(() => decide(rules, { ...input, ...options }), rounds);
      lines.push(
        `  decide() ${label}: p50 ${m.p50.toFixed(1)} µs, p99 ${m.p99.toFixed(1)} µs, ${m.perSecond} decisions/s on one core`,
      );
    }
    lines.push(
      `  ${decided.decisions.filter((d) => d.experience).length}/20 placements personalized (budget at 200: p99 ≤ 100 µs)`,
    );
  }
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
