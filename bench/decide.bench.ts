/**
 * decide() at scale, against two hand-written baselines, on the shared workload
 * (bench/decide-workload.ts): 20 placements, 20 / 200 / 2,000 experiences, 10 segments, 8 decayed
 * intent dimensions, 100 visitors with 500-event histories and varied traits and contexts, so 2,000
 * winners per rule count. The baselines: the one DESIGN.md's budget names, a hand-written closure
 * engine (bench/closure-engine.ts: generic, it compiles the rules document into closures), and the
 * stricter reference of record 20, a decider written for exactly these rules with no rules engine
 * (bench/reference-decider.ts). Each visitor is decided from the stored snapshot, as a page asks
 * (no segment list), as the API asks (segments listed) and with an explanation (which lists them).
 *
 * First the engine and both baselines must agree on every winner, its rendered fragment and every
 * visitor's segments (the run stops loudly if not); then the three are timed interleaved, call by
 * call (the order rotating), on one core: p50 and p99 per decision and the engine's ratios to each.
 * The explanation is compared with the baselines listing segments (they explain nothing).
 * Budgets (DESIGN.md, issue 17): decide ≤ 0.5× the closure engine (p99 ≤ 80 µs at 200 on the
 * 2-core machine), with explanation ≤ 1×.
 *
 * Run: `npm run bench -- decide` or `node bench/decide.bench.ts`.
 */
import { type DecisionInput, type DecisionResult, decide } from "../src/core/decide.ts";
import { compileRules, hashRules, parseRules } from "../src/rules/index.ts";
import { closureEngine } from "./closure-engine.ts";
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
 * The deciders over every visitor, `rounds` times, call by call (the order rotates from call to
 * call, so none is always first), after a warm-up; each decider's p50 and p99 in µs.
 */
function interleaved(
  deciders: ReadonlyArray<(visitor: number) => unknown>,
  visitors: number,
  rounds: number,
): Timing[] {
  for (let r = 0; r < Math.max(3, rounds / 5); r++)
    for (let v = 0; v < visitors; v++) for (const decider of deciders) decider(v);
  const times: number[][] = deciders.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let v = 0; v < visitors; v++) {
      for (let k = 0; k < deciders.length; k++) {
        const d = (r + v + k) % deciders.length;
        const t = performance.now();
        deciders[d]!(v);
        times[d]!.push((performance.now() - t) * 1000);
      }
    }
  }
  return times.map((list) => {
    list.sort((x, y) => x - y);
    return { p50: percentile(list, 0.5), p99: percentile(list, 0.99) };
  });
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
    const closures = closureEngine(scaledDoc(count));
    const inputs = (options: Partial<DecisionInput>): DecisionInput[] =>
      visitors.map((v) => ({ ...v, now: NOW, consent: {}, ...options }));
    let personalized = 0;
    for (const mode of MODES) {
      const modeInputs = inputs(mode.options);
      const wrong = visitors.flatMap((visitor, v) => {
        const ours = decide(rules, modeInputs[v]!);
        if (mode.listSegments === false)
          personalized += ours.decisions.filter((d) => d.experience !== null).length;
        return [
          ...disagreements(visitor, ours, reference(visitor, mode.listSegments), mode.listSegments),
          ...disagreements(visitor, ours, closures(visitor, mode.listSegments, NOW), mode.listSegments).map(
            (line) => `${line} (closure engine)`,
          ),
        ];
      });
      if (wrong.length > 0)
        throw new Error(
          `${count} rules, ${mode.label}: the engine and a baseline disagree (${wrong.length}):\n${wrong.slice(0, 10).join("\n")}`,
        );
    }
    lines.push(
      `${count} experiences, 20 placements, ${visitors.length} visitors: validate+hash+compile ${compileMs.toFixed(1)} ms; engine, reference and closure engine agree on all ${visitors.length * 20} winners (${personalized} personalized) and every visitor's segments`,
    );
    const rounds = count >= 2000 ? 10 : count >= 200 ? 40 : 80;
    for (const mode of MODES) {
      const modeInputs = inputs(mode.options);
      const [ours, theirs, closed] = interleaved(
        [
          (v) => decide(rules, modeInputs[v]!),
          (v) => reference(visitors[v]!, mode.listSegments),
          (v) => closures(visitors[v]!, mode.listSegments, NOW),
        ],
        visitors.length,
        rounds,
      ) as [Timing, Timing, Timing];
      lines.push(
        `  ${mode.label}: northstar p50 ${ours.p50.toFixed(1)} µs, p99 ${ours.p99.toFixed(1)} µs; reference p50 ${theirs.p50.toFixed(1)} µs, p99 ${theirs.p99.toFixed(1)} µs; ratio p50 ${ratio(ours.p50, theirs.p50)}, p99 ${ratio(ours.p99, theirs.p99)}; closure engine p50 ${closed.p50.toFixed(1)} µs, p99 ${closed.p99.toFixed(1)} µs; ratio p50 ${ratio(ours.p50, closed.p50)}, p99 ${ratio(ours.p99, closed.p99)}`,
      );
    }
  }
  lines.push(
    "budgets (DESIGN.md, issue 17): ≤ 0.5× a hand-written closure engine's time (p99 ≤ 80 µs at 200 here), with explanation ≤ 1×; also shown against the decider written for exactly these rules (record 20)",
  );
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
