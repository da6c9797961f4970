/**
 * The engine's leaves, per call: bucket() and pickVariant() (one and two MurmurHash3 over a short key),
 * a compiled HTML template render, a JSON payload render, and intent decay + top dimension. Each figure
 * is the median ops/s of 5 timed runs after a warm-up. Benchmarks measure; tests never assert timings.
 *
 * Run: `node bench/leaves.bench.ts`.
 */
import { bucket, pickVariant } from "../src/core/bucketing.ts";
import { topIntent } from "../src/core/intent.ts";
import { compileJsonTemplate, compileTemplate } from "../src/core/templates.ts";

const RUNS = 5;
const OPS = Number(process.env.BENCH_OPS ?? 200_000);

/** Median ops/s of `RUNS` timed runs of `ops` calls; the sink defeats dead-code elimination. */
function measure(name: string, ops: number, fn: (i: number) => unknown): string {
  let sink = 0;
  const once = () => {
    const start = performance.now();
    for (let i = 0; i < ops; i++) if (fn(i) !== undefined) sink++;
    return performance.now() - start;
  };
  once(); // warm-up: let the JIT settle before timing
  const times = Array.from({ length: RUNS }, once).sort((a, b) => a - b);
  const ms = times[Math.floor(RUNS / 2)]!;
  const opsPerSec = (ops / ms) * 1000;
  const nsPerOp = (ms * 1e6) / ops;
  if (sink < 0) console.log(sink);
  return `${name.padEnd(44)} ${Math.round(opsPerSec).toLocaleString("en-US").padStart(12)} ops/s  ${nsPerOp.toFixed(0).padStart(6)} ns/op`;
}

export async function run(): Promise<string[]> {
  const ids = Array.from(
    { length: 1024 },
    (_, i) => `3f2b8c1e-9d4a-4f6b-8e2a-${String(i).padStart(12, "0")}`,
  );
  const variants = [
    { id: "control", weight: 34 },
    { id: "bold", weight: 33 },
    { id: "calm", weight: 33 },
  ];
  const t = compileTemplate(
    '<h1>Hi {{ traits.firstName | default: "there" | capitalize }}</h1><p>{{ context.geo.city | default: "near you" }}: ' +
      "{{ traits.points | number }} points, {{ intent.top | upcase }}</p>",
    "html",
  );
  const j = compileJsonTemplate({
    title: 'Hi {{ traits.firstName | default: "there" }}',
    points: "{{ traits.points }}",
    items: [{ city: "{{ context.geo.city }}", tag: "{{ intent.top }}" }],
  });
  if (!t.ok || !j.ok) throw new Error("bench templates do not compile");
  const scopes = ids.map((id, i) => ({
    traits: { firstName: i % 3 === 0 ? undefined : `ana <${id.slice(-4)}>`, points: i * 1234.5 },
    context: { geo: { city: i % 2 ? "Lyon" : null } },
    intent: { top: "running" },
  }));
  const now = Date.UTC(2026, 10, 20);
  const intent = {
    running: { value: 8, ts: now - 3_600_000 },
    hiking: { value: 5, ts: now - 86_400_000 },
    golf: { value: 2, ts: now },
    returns: { value: -4, ts: now },
  };
  const halfLives = { running: 86_400_000, hiking: 7 * 86_400_000, golf: 86_400_000 };

  return [
    `node ${process.version}, median of ${RUNS} runs of ${OPS.toLocaleString("en-US")} calls`,
    measure("bucket (36-char uuid id)", OPS, (i) => bucket("hero-2026-11", ids[i & 1023]!)),
    measure("pickVariant, 3 variants, 10% holdout", OPS, (i) =>
      pickVariant("hero-2026-11", ids[i & 1023]!, variants, 0.1),
    ),
    measure("html template render (4 lookups, 5 filters)", OPS, (i) => t.template(scopes[i & 1023]!)),
    measure("json payload render (4 leaves)", OPS, (i) => j.render(scopes[i & 1023]!)),
    measure("topIntent, 4 dimensions", OPS, (i) => topIntent(intent, now + i, halfLives)),
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
