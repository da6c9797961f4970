/**
 * The rules model's costs: validating and compiling the demo rules (once per published version),
 * and evaluating every audience of the scaled rule set (200 experience audiences + 10 segments)
 * against a visitor with a 500-event history. Then a reference: the same trait/context audience
 * workload through json-rules-engine, a well-known rules engine from npm (it has no notion of an
 * event log, so the reference workload is 200 audiences of three comparisons over profile facts).
 *
 * Run: `node bench/rules.bench.ts` (or through bench/run.ts).
 */
import { readFile } from "node:fs/promises";
import { Engine } from "json-rules-engine";
import type { EvalScope } from "../src/core/scope.ts";
import { compileRules, hashRules, parseRules } from "../src/rules/index.ts";
import { benchContext, history, NOW, scaledDoc } from "./decide-workload.ts";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function run(): Promise<string[]> {
  const lines: string[] = [];
  const demoDoc = JSON.parse(
    await readFile(new URL("../rules/northstar.rules.json", import.meta.url), "utf8"),
  );
  const parseTimes: number[] = [];
  const compileTimes: number[] = [];
  const hashTimes: number[] = [];
  for (let i = 0; i < 200; i++) {
    let t = performance.now();
    const p = parseRules(demoDoc);
    parseTimes.push(performance.now() - t);
    if (!p.ok) throw new Error(JSON.stringify(p.errors.slice(0, 3)));
    t = performance.now();
    const hash = await hashRules(p.rules);
    hashTimes.push(performance.now() - t);
    t = performance.now();
    compileRules(p.rules, hash);
    compileTimes.push(performance.now() - t);
  }
  lines.push(
    `demo rules, once per version (medians of 200): validate ${median(parseTimes).toFixed(3)} ms, hash ${median(hashTimes).toFixed(3)} ms, compile ${median(compileTimes).toFixed(3)} ms`,
  );

  const scaled = parseRules(scaledDoc());
  if (!scaled.ok) throw new Error(JSON.stringify(scaled.errors.slice(0, 3)));
  let t = performance.now();
  const rules = compileRules(scaled.rules, "bench");
  lines.push(
    `scaled rules (200 experiences, 20 placements): compile ${(performance.now() - t).toFixed(2)} ms`,
  );

  // Every audience against a 500-event history, fresh per-decision caches each round (as decide() has).
  const state = history(rules);
  const traits = { firstName: "Ana", tier: "gold", lifetimeValue: 900 };
  const audiences = [
    ...Object.values(rules.placements).flatMap((p) =>
      p.experiences.flatMap((x) => (x.audience ? [x.audience] : [])),
    ),
    ...Object.values(rules.segments),
  ];
  const scope = (): EvalScope => ({
    now: NOW,
    traits,
    context: benchContext,
    state,
    consent: {},
    assignments: {},
    halfLives: rules.halfLives,
  });
  let matched = 0;
  for (let i = 0; i < 2000; i++) for (const a of audiences) a(scope());
  const samples: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const s = scope();
    t = performance.now();
    matched = 0;
    for (const a of audiences) if (a(s)) matched++;
    samples.push((performance.now() - t) * 1000);
  }
  samples.sort((a, b) => a - b);
  lines.push(
    `all ${audiences.length} audiences, 500-event history: p50 ${samples[2500]!.toFixed(1)} µs, p99 ${samples[4950]!.toFixed(1)} µs per evaluation (${matched} true)`,
  );

  // Reference: 200 audiences of three comparisons over profile facts, ours vs json-rules-engine.
  const reference = Array.from({ length: 200 }, (_, i) => ({
    ours: {
      all: [
        { op: "eq", path: "traits.tier", value: i % 2 ? "gold" : "silver" },
        { op: "gte", path: "traits.lifetimeValue", value: i * 10 },
        { op: "in", path: "context.geo.country", value: ["FR", "DE", `X${i}`] },
      ],
    },
    theirs: {
      all: [
        { fact: "traits", path: "$.tier", operator: "equal", value: i % 2 ? "gold" : "silver" },
        { fact: "traits", path: "$.lifetimeValue", operator: "greaterThanInclusive", value: i * 10 },
        { fact: "country", operator: "in", value: ["FR", "DE", `X${i}`] },
      ],
    },
  }));
  const refDoc = parseRules({
    version: "aud",
    segments: Object.fromEntries(reference.map((a, i) => [`a${i}`, { condition: a.ours }])),
  });
  if (!refDoc.ok) throw new Error(JSON.stringify(refDoc.errors.slice(0, 3)));
  const refRules = compileRules(refDoc.rules, "aud");
  const engine = new Engine([], { allowUndefinedFacts: true });
  for (const [i, a] of reference.entries())
    engine.addRule({ conditions: a.theirs, event: { type: `a${i}` } });
  const facts = { traits, country: "FR" };
  const ourRun = () => {
    const s = scope();
    let n = 0;
    for (const test of Object.values(refRules.segments)) if (test(s)) n++;
    return n;
  };
  const theirRun = async () => (await engine.run(facts)).events.length;
  if (ourRun() !== (await theirRun()))
    lines.push("warning: the two engines disagree on the reference workload");
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let round = 0; round < 5; round++) {
    t = performance.now();
    for (let i = 0; i < 2000; i++) ourRun();
    ours.push(((performance.now() - t) * 1000) / 2000);
    t = performance.now();
    for (let i = 0; i < 100; i++) await theirRun();
    theirs.push(((performance.now() - t) * 1000) / 100);
  }
  const o = median(ours);
  const r = median(theirs);
  lines.push(
    `reference, 200 profile audiences (interleaved, medians of 5): northstar ${o.toFixed(1)} µs, json-rules-engine ${r.toFixed(0)} µs — ratio ${(r / o).toFixed(0)}×`,
  );
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
