/**
 * Where a page's CPU goes, without the noise of separate processes: Northstar's own modules
 * (bench/worker/page-steps.ts, built as `wrangler deploy` builds it) in one workerd isolate with
 * its Durable Objects, the origin a service binding in the same process. Each step runs N times
 * in a row; its CPU is the process's CPU over those N calls (/proc), the steps interleaved over
 * rounds, medians. Whole pages (pass-through, the one-selector rewriter, Northstar for a returning
 * visitor, a new visitor and a crawler, each read to its last byte, its writes settled) sit beside
 * the parts of a returning visitor's page, so the gap between Northstar and the rewriter can be read
 * against what each part costs.
 *
 * Why: two workerd processes running the same build differ by up to 8–10% in CPU per page in the
 * proxy bench's A/A runs (docs/benchmarks.md), more than most single changes to the page path;
 * here every step shares one process.
 *
 * Run: `npm run bench -- steps`. BENCH_STEP_N (object calls per measure, default 2000; a quarter as
 * many pages, five times as many of the other parts), BENCH_ROUNDS
 * (default 5).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { cpuMs, workerdChildren } from "./counting.ts";
import { bigPage, publishBenchRules } from "./proxy.bench.ts";
import { COMPAT, median, ROOT } from "./workerd.ts";

const N = Number(process.env.BENCH_STEP_N ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const OUT = join(ROOT, ".wrangler/steps-build");

function build(): string {
  mkdirSync(OUT, { recursive: true });
  const flags = /^compatibility_flags\s*=\s*(\[.*\])\s*$/m.exec(
    readFileSync(join(ROOT, "wrangler.toml"), "utf8"),
  )?.[1];
  const config = join(OUT, "wrangler.toml");
  writeFileSync(
    config,
    `name = "northstar-steps"\nmain = "${join(ROOT, "bench/worker/page-steps.ts")}"\ncompatibility_date = "${COMPAT}"\ncompatibility_flags = ${flags ?? "[]"}\nminify = true\n`,
  );
  execFileSync("npx", ["wrangler", "deploy", "--dry-run", "--outdir", OUT, "--config", config], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
  });
  return join(OUT, "page-steps.js");
}

export async function run(): Promise<string[]> {
  const script = build();
  const page = bigPage();
  const before = workerdChildren();
  const mf = new Miniflare({
    workers: [
      {
        name: "steps",
        modules: [{ type: "ESModule", path: script }],
        compatibilityDate: COMPAT,
        compatibilityFlags: ["no_nodejs_compat"],
        bindings: {
          ORIGIN: "https://origin.test",
          NS_PREFIX: "/_ns",
          STORE_DEADLINE_MS: "50",
          ADMIN_TOKEN: "bench-admin-token",
          COOKIE_SECRET: "bench-cookie-secret-0123456789",
          IDENTITY_SECRET: "bench-identity-secret-0123456789",
          SERVER_API_KEY: "bench-server-key",
          COOKIE_SECURE: "false",
          DEBUG_HEADERS: "true",
          BEACON_AUTO_INJECT: "true",
        },
        serviceBindings: { ORIGIN_SERVICE: "origin" },
        kvNamespaces: ["RULES", "PROFILES"],
        durableObjects: {
          VISITOR: { className: "VisitorDO", useSQLite: true },
          EXPERIMENTS: { className: "ExperimentDO", useSQLite: true },
        },
      },
      {
        name: "origin",
        modules: true,
        script: `const page = ${JSON.stringify(page)};
export default { fetch() { return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } }); } };`,
        compatibilityDate: COMPAT,
      },
    ],
    port: 0,
  });
  try {
    const url = (await mf.ready).toString().replace(/\/$/, "");
    const pid = [...workerdChildren()].find((p) => !before.has(p));
    if (!pid) throw new Error("no workerd process found");
    await publishBenchRules(mf, "hero");
    const setup = (await (await fetch(`${url}/?step=setup&n=20`)).json()) as { steps: string[] };
    const perCall = new Map<string, number[]>(setup.steps.map((s) => [s, []]));
    const measure = async (step: string, n: number) => {
      const c0 = cpuMs(pid);
      const res = await fetch(`${url}/?step=${encodeURIComponent(step)}&n=${n}`);
      if (!res.ok) throw new Error(`${step}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
      return ((cpuMs(pid) - c0) * 1000) / n;
    };
    // /proc counts CPU in 10 ms ticks: each measure is long enough to read to about 1%.
    const callsOf = (step: string) =>
      step.startsWith("page-") ? N >> 2 : /^(object-call|personalization)/.test(step) ? N : N * 5;
    for (const step of setup.steps) await measure(step, Math.max(1, callsOf(step) >> 3)); // warm-up
    for (let round = 0; round < ROUNDS; round++)
      for (const step of round % 2 ? [...setup.steps].reverse() : setup.steps)
        perCall.get(step)!.push(await measure(step, callsOf(step)));
    const us = (step: string) => median(perCall.get(step)!);
    const spread = (step: string) => {
      const xs = [...perCall.get(step)!].sort((a, b) => a - b);
      return `${xs[0]!.toFixed(1)}–${xs[xs.length - 1]!.toFixed(1)}`;
    };
    const rewriter = us("page-rewriter");
    const lines = [
      `page steps in one workerd process (${N >> 2} pages, ${N} object calls, ${N * 5} other calls per measure; ${ROUNDS} rounds interleaved, medians; CPU of the whole process: worker, objects and origin)`,
      "step                                        µs per call (min–max)      × rewriter page   − rewriter page (µs)",
    ];
    for (const step of setup.steps) {
      const v = us(step);
      const whole = step.startsWith("page-");
      lines.push(
        `${step.padEnd(42)} ${v.toFixed(1).padStart(8)} (${spread(step).padStart(13)})    ${whole ? (v / rewriter).toFixed(2).padStart(13) : "".padStart(13)}   ${whole ? (v - rewriter).toFixed(0).padStart(8) : ""}`,
      );
    }
    return lines;
  } finally {
    await mf.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
