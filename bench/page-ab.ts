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
 * Each build runs in BENCH_AB_PROCESSES workerd processes per target (default 2, started A B B A):
 * two processes of one build can differ by up to 10% for a whole run, more than most changes.
 *
 * Run: `BENCH_AB=<dirA>,<dirB> node bench/page-ab.ts`. Environment: BENCH_AB_TARGETS (of
 * returning, crawler, new, demo, nochange; default returning,crawler), BENCH_SECONDS (per slice, default 3),
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
  /** The page asked: "/" (the hero rules' page), "/big" for the page nothing changes. */
  readonly path: string;
  readonly cpu: () => number;
  dispose(): Promise<void>;
}

const SPECS: Record<
  string,
  { rules: BenchRules; visitors: "returning" | "new" | "crawler"; path?: string; beacon?: boolean }
> = {
  returning: { rules: "hero", visitors: "returning" },
  crawler: { rules: "hero", visitors: "crawler" },
  new: { rules: "hero", visitors: "new" },
  demo: { rules: "demo", visitors: "returning" },
  // The pass-through path: a URL with no placement, auto-injection off (as the proxy bench's ns-nochange).
  nochange: { rules: "nochange", visitors: "returning", path: "/big", beacon: false },
};

async function target(build: string, label: string, kind: string, origin: string): Promise<AbTarget> {
  const spec = SPECS[kind];
  if (!spec) throw new Error(`unknown target ${kind}`);
  const persist = mkdtempSync(join(tmpdir(), "ns-ab-do-"));
  const before = workerdChildren();
  const beacon = spec.beacon ?? true;
  const { mf, url } = await startNorthstar(
    origin,
    { BEACON_AUTO_INJECT: String(beacon) },
    persist,
    false,
    build,
  );
  const pid = [...workerdChildren()].find((p) => !before.has(p))!;
  await publishBenchRules(mf, spec.rules);
  const cookies = spec.visitors === "returning" ? await returningVisitors(`${url}/`, VISITORS) : [];
  return {
    name: `${kind} ${label}`,
    url,
    cookies,
    userAgent: spec.visitors === "crawler" ? CRAWLER_UA : BROWSER_UA,
    path: spec.path ?? "/",
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
  return {
    name,
    url,
    path: "/",
    cookies: [],
    userAgent: BROWSER_UA,
    cpu: () => 0,
    dispose: () => mf.dispose(),
  };
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
  const res = await fetch(`${t.url}${slowPath(t.path)}`, { headers });
  const reader = res.body!.getReader();
  await reader.read();
  const t3 = performance.now();
  while (!(await reader.read()).done) {}
  const origin = arrived.get(id)!;
  return { total: t3 - t0, out: origin.at - t0, back: t3 - origin.wrote };
}

/**
 * Processes per build and target, started in a balanced order (A B B A …): two workerd processes
 * of the same build can differ by up to 10% in CPU per page for a whole run (an A/A run,
 * docs/benchmarks.md), so a build's figure is the mean of its processes' medians.
 */
/**
 * Whether the builds' processes are apart: only then does B ÷ A say more than how far processes of
 * the same code differ (up to 10% for a whole run; and a rebuild whose one change was on a path the
 * bench never takes came out 4.7% apart once: docs/benchmarks.md). Even apart, a gap under about 5%
 * wants the run repeated with the builds swapped.
 */
function separation(a: readonly number[], b: readonly number[]): string {
  if (Math.max(...b) < Math.min(...a)) return "every B process below every A process";
  if (Math.min(...b) > Math.max(...a)) return "every B process above every A process";
  return "the processes overlap: no difference this run can show";
}

const PROCESSES = Math.max(1, Number(process.env.BENCH_AB_PROCESSES ?? 2));

/** The processes of one target kind: A's and B's, each named `<kind> A1`, `<kind> B1`, … */
interface AbGroup {
  readonly kind: string;
  readonly a: AbTarget[];
  readonly b: AbTarget[];
}

const mean = (xs: readonly number[]): number => xs.reduce((sum, x) => sum + x, 0) / Math.max(1, xs.length);

export async function run(): Promise<string[]> {
  if (BUILDS.length !== 2) throw new Error("BENCH_AB=<dirA>,<dirB>");
  const { server, url: origin } = await startOrigin();
  const groups: AbGroup[] = [];
  const extra: AbTarget[] = [];
  try {
    for (const kind of TARGETS) {
      const group: AbGroup = { kind, a: [], b: [] };
      groups.push(group);
      for (let p = 0; p < PROCESSES; p++) {
        // A B, then B A, and so on: neither build is always started first.
        const order: Array<"a" | "b"> = p % 2 ? ["b", "a"] : ["a", "b"];
        for (const side of order)
          group[side].push(
            await target(BUILDS[side === "a" ? 0 : 1]!, `${side.toUpperCase()}${p + 1}`, kind, origin),
          );
      }
    }
    const all = groups.flatMap((g) => [...g.a, ...g.b]);
    const rps = new Map<string, number[]>(all.map((t) => [t.name, []]));
    const cpu = new Map<string, number[]>(all.map((t) => [t.name, []]));
    const slice = (t: AbTarget) =>
      loadSlice({
        url: `${t.url}${t.path}`,
        seconds: SECONDS,
        connections: CONNECTIONS,
        cookies: t.cookies,
        userAgent: t.userAgent,
      });
    for (const t of all) await slice(t); // warm-up, discarded (BENCH_ROUNDS=0: first bytes only)
    for (let round = 0; round < ROUNDS; round++) {
      for (const group of groups) {
        // A and B alternate within the round, the order swapped each round.
        const turns = group.a.flatMap((a, p) => (round % 2 ? [group.b[p]!, a] : [a, group.b[p]!]));
        for (const t of turns) {
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
      `A/B: A ${BUILDS[0]}, B ${BUILDS[1]}; ${PROCESSES} process(es) per build and target, ${ROUNDS}×${SECONDS}s slices interleaved, ${CONNECTIONS} connections; a build's figure is the mean of its processes' medians; slow-origin first byte median of ${SLOW_ROUNDS} per process`,
      "target          req/s A  req/s B  B÷A    CPU ms/page A  B     B÷A    first byte ms A  B     B−A   (until the origin has the request A  B; origin's first write to first byte A  B)",
    ];
    for (const { kind, a, b } of groups) {
      const of = (side: AbTarget[], figure: (t: AbTarget) => number) => mean(side.map(figure));
      const [ra, rb] = [
        of(a, (t) => median(rps.get(t.name)!) || 0),
        of(b, (t) => median(rps.get(t.name)!) || 0),
      ];
      const [ca, cb] = [
        of(a, (t) => median(cpu.get(t.name)!) || 0),
        of(b, (t) => median(cpu.get(t.name)!) || 0),
      ];
      const part = (side: AbTarget[], key: "total" | "out" | "back") =>
        of(side, (t) => median(slow.get(t.name)!.map((x) => x[key])));
      const [fa, fb] = [part(a, "total"), part(b, "total")];
      lines.push(
        `${kind.padEnd(14)} ${ra.toFixed(0).padStart(8)} ${rb.toFixed(0).padStart(8)}  ${(rb / ra).toFixed(3)}  ${ca.toFixed(2).padStart(13)} ${cb.toFixed(2).padStart(5)}  ${(cb / ca).toFixed(3)}  ${fa.toFixed(2).padStart(15)} ${fb.toFixed(2).padStart(5)}  ${(fb - fa >= 0 ? "+" : "") + (fb - fa).toFixed(2)}  (${part(a, "out").toFixed(2)} ${part(b, "out").toFixed(2)}; ${part(a, "back").toFixed(2)} ${part(b, "back").toFixed(2)})`,
      );
      if (PROCESSES > 1) {
        const perProcess = (side: AbTarget[]) => side.map((t) => median(cpu.get(t.name)!) || 0);
        lines.push(
          `  per process, CPU ms/page: ${[...a, ...b].map((t) => `${t.name.slice(kind.length + 1)} ${(median(cpu.get(t.name)!) || 0).toFixed(2)}`).join(", ")}; ${separation(perProcess(a), perProcess(b))}`,
        );
      }
    }
    for (const t of floors) {
      const part = (key: "total" | "out" | "back") => median(slow.get(t.name)!.map((x) => x[key]));
      lines.push(
        `${t.name.padEnd(14)} first byte ${part("total").toFixed(2)} ms (until the origin has the request ${part("out").toFixed(2)}; origin's first write to first byte ${part("back").toFixed(2)})`,
      );
    }
    return lines;
  } finally {
    for (const t of [...groups.flatMap((g) => [...g.a, ...g.b]), ...extra]) await t.dispose();
    server.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
