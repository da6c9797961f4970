/**
 * decide() at scale, against the hand-written reference (bench/reference-decider.ts), on the shared
 * workload (bench/decide-workload.ts): 20 placements, 20 / 200 / 2,000 experiences, 10 segments, 8
 * decayed intent dimensions, 100 visitors with 500-event histories and varied traits and contexts,
 * so 2,000 winners per rule count. Each visitor is decided from the stored snapshot, as a page asks
 * (no segment list), as the API asks (segments listed) and with an explanation (which lists them).
 *
 * First the engine and the reference must agree on every winner, its rendered fragment and every
 * visitor's segments (the run stops loudly if not); then both are timed interleaved, call by call
 * (which goes first alternates), on one core: p50 and p99 per decision and their ratios. The
 * explanation is compared with the reference listing segments (the reference explains nothing).
 * Budgets (issue 17): decide ≤ 0.5× the reference (p99 ≤ 80 µs at 200 on the 2-core machine),
 * with explanation ≤ 1×.
 *
 * Run: `npm run bench -- decide` or `node bench/decide.bench.ts`.
 */
import { type DecisionInput, type DecisionResult, decide } from "../src/core/decide.ts";
import { compileRules, hashRules, parseRules } from "../src/rules/index.ts";
import { type BenchVisitor, benchVisitors, NOW, scaledDoc } from "./decide-workload.ts";
import { type ReferenceResult, referenceDecider } from "./reference-decider.ts";

export { benchContext, history, NOW, scaledDoc } from "./decide-workload.ts";

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

interface Timing {
  readonly p50: number;
  readonly p99: number;
}

/**
 * Both deciders over every visitor, `rounds` times, call by call (which goes first alternates),
 * after a warm-up; each call's time in µs.
 */
function interleaved(
  ours: (visitor: number) => unknown,
  theirs: (visitor: number) => unknown,
  visitors: number,
  rounds: number,
): { ours: Timing; theirs: Timing } {
  for (let r = 0; r < Math.max(3, rounds / 5); r++)
    for (let v = 0; v < visitors; v++) {
      ours(v);
      theirs(v);
    }
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (let v = 0; v < visitors; v++) {
      if ((r + v) % 2 === 0) {
        let t = performance.now();
        ours(v);
        a.push((performance.now() - t) * 1000);
        t = performance.now();
        theirs(v);
        b.push((performance.now() - t) * 1000);
      } else {
        let t = performance.now();
        theirs(v);
        b.push((performance.now() - t) * 1000);
        t = performance.now();
        ours(v);
        a.push((performance.now() - t) * 1000);
      }
    }
  }
  a.sort((x, y) => x - y);
  b.sort((x, y) => x - y);
  return {
    ours: { p50: percentile(a, 0.5), p99: percentile(a, 0.99) },
    theirs: { p50: percentile(b, 0.5), p99: percentile(b, 0.99) },
  };
}

/** Where the engine and the reference differ for one visitor (empty: they agree). */
function disagreements(
  visitor: BenchVisitor,
  ours: DecisionResult,
  theirs: ReferenceResult,
  segments: boolean,
): string[] {
  const found: string[] = [];
  if (ours.decisions.length !== theirs.decisions.length)
    found.push(`${ours.decisions.length} decisions vs ${theirs.decisions.length}`);
  theirs.decisions.forEach((want, p) => {
    const got = ours.decisions[p];
    if (got?.placement !== want.placement || got.experience !== want.experience || got.html !== want.html)
      found.push(
        `${want.placement}: engine ${got?.experience ?? null} ${JSON.stringify(got?.html)}, reference ${want.experience} ${JSON.stringify(want.html)}`,
      );
  });
  if (segments && ours.segments.join() !== theirs.segments?.join())
    found.push(`segments: engine [${ours.segments.join()}], reference [${theirs.segments?.join()}]`);
  if (ours.intent.top !== theirs.intent.top)
    found.push(`top intent: engine ${ours.intent.top}, reference ${theirs.intent.top}`);
  return found.map((line) => `${visitor.visitorId} ${line}`);
}

const MODES = [
  { label: "as a page asks (no segment list)", options: { segments: false }, listSegments: false },
  { label: "as the API asks (segments listed)", options: { segments: true }, listSegments: true },
  {
    label: "with explanation (vs the reference listing segments)",
    options: { explain: true },
    listSegments: true,
  },
] as const;

const ratio = (ours: number, theirs: number) => `${(ours / theirs).toFixed(2)}×`;

export async function run(): Promise<string[]> {
  const lines: string[] = [];
  for (const count of [20, 200, 2000]) {
    const compileStart = performance.now();
    const parsed = parseRules(scaledDoc(count));
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors.slice(0, 3)));
    const rules = compileRules(parsed.rules, await hashRules(parsed.rules));
    const compileMs = performance.now() - compileStart;
    const visitors = benchVisitors(rules);
    const reference = referenceDecider(count);
    const inputs = (options: Partial<DecisionInput>): DecisionInput[] =>
      visitors.map((v) => ({ ...v, now: NOW, consent: {}, ...options }));
    let personalized = 0;
    for (const mode of MODES) {
      const modeInputs = inputs(mode.options);
      const wrong = visitors.flatMap((visitor, v) => {
        const ours = decide(rules, modeInputs[v]!);
        if (mode.listSegments === false)
          personalized += ours.decisions.filter((d) => d.experience !== null).length;
        return disagreements(visitor, ours, reference(visitor, mode.listSegments), mode.listSegments);
      });
      if (wrong.length > 0)
        throw new Error(
          `${count} rules, ${mode.label}: the engine and the reference disagree (${wrong.length}):\n${wrong.slice(0, 10).join("\n")}`,
        );
    }
    lines.push(
      `${count} experiences, 20 placements, ${visitors.length} visitors: validate+hash+compile ${compileMs.toFixed(1)} ms; engine and reference agree on all ${visitors.length * 20} winners (${personalized} personalized) and every visitor's segments`,
    );
    const rounds = count >= 2000 ? 10 : count >= 200 ? 40 : 80;
    for (const mode of MODES) {
      const modeInputs = inputs(mode.options);
      const m = interleaved(
        (v) => decide(rules, modeInputs[v]!),
        (v) => reference(visitors[v]!, mode.listSegments),
        visitors.length,
        rounds,
      );
      lines.push(
        `  ${mode.label}: northstar p50 ${m.ours.p50.toFixed(1)} µs, p99 ${m.ours.p99.toFixed(1)} µs; reference p50 ${m.theirs.p50.toFixed(1)} µs, p99 ${m.theirs.p99.toFixed(1)} µs; ratio p50 ${ratio(m.ours.p50, m.theirs.p50)}, p99 ${ratio(m.ours.p99, m.theirs.p99)}`,
      );
    }
  }
  lines.push("budgets (issue 17): ≤ 0.5× the reference (p99 ≤ 80 µs at 200 here), with explanation ≤ 1×");
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
