/**
 * `npm run bench` runs every benchmark but the soak; `npm run bench -- decide` (or bundle, rules,
 * leaves, state, ingest, proxy, breakdown, steps, journeys, snapshot, soak) runs one. The soak (minutes, through `wrangler dev`) runs
 * only when named.
 * Benchmarks measure; tests never assert timings. Run on a quiet machine and read medians.
 */
const benches: Record<string, () => Promise<{ run(): Promise<string[]> }>> = {
  bundle: () => import("./bundle.bench.ts"),
  decide: () => import("./decide.bench.ts"),
  rules: () => import("./rules.bench.ts"),
  leaves: () => import("./leaves.bench.ts"),
  state: () => import("./state.bench.ts"),
  ingest: () => import("./ingest.bench.ts"),
  proxy: () => import("./proxy.bench.ts"),
  breakdown: () => import("./breakdown.bench.ts"),
  steps: () => import("./steps.bench.ts"),
  journeys: () => import("./journeys.bench.ts"),
  snapshot: () => import("./snapshot.bench.ts"),
  soak: () => import("./soak.bench.ts"),
};
const ONLY_WHEN_NAMED = new Set(["soak"]);

const wanted = process.argv.slice(2).filter((a) => a in benches);
for (const name of wanted.length ? wanted : Object.keys(benches).filter((n) => !ONLY_WHEN_NAMED.has(n))) {
  console.log(`\n== ${name} ==`);
  const mod = await benches[name]!();
  for (const line of await mod.run()) console.log(line);
}

export {};
