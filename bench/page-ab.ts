/**
 * An A/B of two builds of the worker on the proxy bench's pages, in one run: each build in its own
 * workerd, slices interleaved (A B A B …, the pairs' order swapped each round) so machine noise falls
 * on both alike; requests/s and CPU ms per page (the whole workerd process) per slice, then the
 * slow-origin first byte (one request per target per round, the order rotated), medians and B ÷ A.
 * The first byte is also split, on the one clock of this process, into the time until the origin
 * has the request (what the worker does before its origin request leaves) and the time from the
 * origin's first half written to the first byte received (what it does on the way back). The slow
 * request asks for the target's own page with `?slow`, as bench/proxy.bench.ts's does, so the hero
 * rules fill `#hero` on it.
 * Builds are directories holding an `index.js` (`wrangler deploy --dry-run --outdir <dir>`).
 *
 * Run: `BENCH_AB=<dirA>,<dirB> node bench/page-ab.ts`. Environment: BENCH_AB_TARGETS (of
 * returning, crawler, new, demo; default returning,crawler), BENCH_SECONDS (per slice, default 3),
 * BENCH_ROUNDS (default 6), BENCH_SLOW_ROUNDS (default 41), BENCH_CONNECTIONS (default 10),
 * BENCH_VISITORS (default 20). BENCH_AB_FLOORS=1 adds the pass-through and the one-selector
 * rewriter to the first-byte rounds, as the floor the split figures are read against.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { cpuMs, workerdChildren } from "./counting.ts";
import {
  type BenchRules,
  CRAWLER_UA,
  PASSTHROUGH,
  publishBenchRules,
  slowPath,
  startOrigin as startProxyOrigin,
} from "./proxy.bench.ts";
import {
  BROWSER_UA,
  COMPAT,
  loadSlice,
  median,
  ONE_SELECTOR_REWRITER,
  returningVisitors,
  startNorthstar,
} from "./workerd.ts";

const BUILDS = (process.env.BENCH_AB ?? "").split(",").filter(Boolean);
const TARGETS = (process.env.BENCH_AB_TARGETS ?? "returning,crawler").split(",");
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const SLOW_ROUNDS = Number(process.env.BENCH_SLOW_ROUNDS ?? 41);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const VISITORS = Number(process.env.BENCH_VISITORS ?? 20);

interface AbTarget {
  readonly name: string;
  readonly url: string;
  readonly cookies: readonly string[];
  readonly userAgent: string;
  readonly cpu: () => number;
  dispose(): Promise<void>;
}

const SPECS: Record<string, { rules: BenchRules; visitors: "returning" | "new" | "crawler" }> = {
  returning: { rules: "hero", visitors: "returning" },
  crawler: { rules: "hero", visitors: "crawler" },
  new: { rules: "hero", visitors: "new" },
  demo: { rules: "demo", visitors: "returning" },
};

async function target(build: string, label: string, kind: string, origin: string): Promise<AbTarget> {
  const spec = SPECS[kind];
  if (!spec) throw new Error(`unknown target ${kind}`);
  const persist = mkdtempSync(join(tmpdir(), "ns-ab-do-"));
  const before = workerdChildren();
  const { mf, url } = await startNorthstar(origin, { BEACON_AUTO_INJECT: "true" }, persist, false, build);
  const pid = [...workerdChildren()].find((p) => !before.has(p))!;
  await publishBenchRules(mf, spec.rules);
  const cookies = spec.visitors === "returning" ? await returningVisitors(`${url}/`, VISITORS) : [];
  return {
    name: `${kind} ${label}`,
    url,
    cookies,
    userAgent: spec.visitors === "crawler" ? CRAWLER_UA : BROWSER_UA,
    cpu: () => cpuMs(pid),
    dispose: async () => {
      await mf.dispose();
      rmSync(persist, { recursive: true, force: true });
    },
  };
}

/** When the origin had each slow request (by its `x-ab-id`), and when it wrote the first half. */
const arrived = new Map<string, { at: number; wrote: number }>();

/** The proxy bench's origin, recording when each slow request arrived and was first answered. */
const startOrigin = () =>
  startProxyOrigin((req, at, wrote) => arrived.set(String(req.headers["x-ab-id"]), { at, wrote }));

let requestId = 0;

/** ms to the first byte; until the origin had the request; from its first write to that byte. */
/** A reference worker (pass-through, one-selector rewriter): first bytes only. */
async function floorTarget(name: string, script: string): Promise<AbTarget> {
  const mf = new Miniflare({ modules: true, script, compatibilityDate: COMPAT, port: 0 });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  return { name, url, cookies: [], userAgent: BROWSER_UA, cpu: () => 0, dispose: () => mf.dispose() };
}

async function firstByte(t: AbTarget): Promise<{ total: number; out: number; back: number }> {
  const id = String(++requestId);
  const headers: Record<string, string> = {
    "accept-encoding": "identity",
    "user-agent": t.userAgent,
    "x-ab-id": id,
  };
  if (t.cookies[0]) headers.cookie = t.cookies[0];
  const t0 = performance.now();
  const res = await fetch(`${t.url}${slowPath("/")}`, { headers });
  const reader = res.body!.getReader();
  await reader.read();
  const t3 = performance.now();
  while (!(await reader.read()).done) {}
  const origin = arrived.get(id)!;
  return { total: t3 - t0, out: origin.at - t0, back: t3 - origin.wrote };
}

export async function run(): Promise<string[]> {
  if (BUILDS.length !== 2) throw new Error("BENCH_AB=<dirA>,<dirB>");
  const { server, url: origin } = await startOrigin();
  const pairs: Array<[AbTarget, AbTarget]> = [];
  const extra: AbTarget[] = [];
  try {
    for (const kind of TARGETS)
      pairs.push([await target(BUILDS[0]!, "A", kind, origin), await target(BUILDS[1]!, "B", kind, origin)]);
    const all = pairs.flat();
    const rps = new Map<string, number[]>(all.map((t) => [t.name, []]));
    const cpu = new Map<string, number[]>(all.map((t) => [t.name, []]));
    const slice = (t: AbTarget) =>
      loadSlice({
        url: `${t.url}/`,
        seconds: SECONDS,
        connections: CONNECTIONS,
        cookies: t.cookies,
        userAgent: t.userAgent,
      });
    for (const t of all) await slice(t); // warm-up, discarded (BENCH_ROUNDS=0: first bytes only)
    for (let round = 0; round < ROUNDS; round++) {
      for (const pair of pairs) {
        for (const t of round % 2 ? [...pair].reverse() : pair) {
          const cpu0 = t.cpu();
          const s = await slice(t);
          rps.get(t.name)!.push(s.rps);
          cpu.get(t.name)!.push((t.cpu() - cpu0) / Math.max(1, s.requests));
        }
      }
    }
    const floors =
      process.env.BENCH_AB_FLOORS === "1"
        ? [
            await floorTarget("pass-through", PASSTHROUGH(origin)),
            await floorTarget("rewriter", ONE_SELECTOR_REWRITER(origin)),
          ]
        : [];
    extra.push(...floors);
    const timed = [...all, ...floors];
    const slow = new Map<string, Array<{ total: number; out: number; back: number }>>(
      timed.map((t) => [t.name, []]),
    );
    for (let round = 0; round < SLOW_ROUNDS; round++)
      for (let k = 0; k < timed.length; k++) {
        const t = timed[(round + k) % timed.length]!;
        slow.get(t.name)!.push(await firstByte(t));
      }
    const lines = [
      `A/B: A ${BUILDS[0]}, B ${BUILDS[1]}; ${ROUNDS}×${SECONDS}s slices interleaved, ${CONNECTIONS} connections; slow-origin first byte median of ${SLOW_ROUNDS}`,
      "target          req/s A  req/s B  B÷A    CPU ms/page A  B     B÷A    first byte ms A  B     B−A   (until the origin has the request A  B; origin's first write to first byte A  B)",
    ];
    for (const [a, b] of pairs) {
      const [ra, rb] = [median(rps.get(a.name)!) || 0, median(rps.get(b.name)!) || 0];
      const [ca, cb] = [median(cpu.get(a.name)!) || 0, median(cpu.get(b.name)!) || 0];
      const part = (t: AbTarget, key: "total" | "out" | "back") =>
        median(slow.get(t.name)!.map((x) => x[key]));
      const [fa, fb] = [part(a, "total"), part(b, "total")];
      lines.push(
        `${a.name.slice(0, -2).padEnd(14)} ${ra.toFixed(0).padStart(8)} ${rb.toFixed(0).padStart(8)}  ${(rb / ra).toFixed(3)}  ${ca.toFixed(2).padStart(13)} ${cb.toFixed(2).padStart(5)}  ${(cb / ca).toFixed(3)}  ${fa.toFixed(2).padStart(15)} ${fb.toFixed(2).padStart(5)}  ${(fb - fa >= 0 ? "+" : "") + (fb - fa).toFixed(2)}  (${part(a, "out").toFixed(2)} ${part(b, "out").toFixed(2)}; ${part(a, "back").toFixed(2)} ${part(b, "back").toFixed(2)})`,
      );
    }
    for (const t of floors) {
      const part = (key: "total" | "out" | "back") => median(slow.get(t.name)!.map((x) => x[key]));
      lines.push(
        `${t.name.padEnd(14)} first byte ${part("total").toFixed(2)} ms (until the origin has the request ${part("out").toFixed(2)}; origin's first write to first byte ${part("back").toFixed(2)})`,
      );
    }
    return lines;
  } finally {
    for (const t of [...pairs.flat(), ...extra]) await t.dispose();
    server.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
