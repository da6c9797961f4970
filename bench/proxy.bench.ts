/**
 * The proxy benchmark: the same ~100 KB page through five targets, measured in one interleaved
 * run (A B C D A B C D …) so machine noise falls on all of them alike. Each worker runs in its
 * own workerd (one Miniflare each), fetching a real origin on loopback, with no `wrangler dev`
 * hop in front.
 *
 *   origin       the origin server itself (node:http)
 *   passthrough  a worker that only fetches the origin
 *   rewriter     a worker whose native HTMLRewriter replaces one selector (the floor for any rewriting proxy)
 *   northstar    Northstar with the demo rules, returning visitors (cookie): KV + Durable Object + decide + beacon
 *   northstar-new      the same, every request a new visitor (no cookie): decide + a signed cookie, no object
 *   northstar-crawler  the same, a crawler's user agent (no cookie, no beacon)
 *   northstar-nochange  Northstar on a URL with no placement and auto-injection off (the pass-through path)

Each Northstar target keeps its Durable Objects' SQLite files in its own directory, one file per
object: the objects created per 1,000 pages are counted from them, after the run.
The Northstar targets also run behind bench/counting.ts's entry: per 1,000 pages it prints the
Durable Object requests, SQLite rows written and read, and KV calls counted in workerd, and the
workerd process's CPU ms per page (an upper bound on billed Worker CPU).
 *
 * Run: `npm run bench -- proxy` (or `node bench/proxy.bench.ts`). Environment: BENCH_SECONDS (per
 * slice, default 4), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 10), BENCH_VISITORS (default 20).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { parseRules } from "../src/rules/index.ts";
import { publishRules, type RulesKv } from "../src/rules/store.ts";
import { type CallCounts, countsBetween, cpuMs, readCounts, workerdChildren } from "./counting.ts";
import {
  BROWSER_UA,
  COMPAT,
  loadSlice,
  median,
  ONE_SELECTOR_REWRITER,
  ROOT,
  returningVisitors,
  startNorthstar,
} from "./workerd.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const VISITORS = Number(process.env.BENCH_VISITORS ?? 20);

function bigPage(): string {
  try {
    return readFileSync(join(ROOT, "demo/site/big.html"), "utf8");
  } catch {
    const cards = Array.from(
      { length: 700 },
      (_, i) =>
        `<li class="card"><a href="/running/p-${i}">Trail shoe ${i}</a><span class="price">$${99 + (i % 50)}</span></li>`,
    ).join("\n");
    return `<!doctype html><html><head><title>Summit &amp; Stride</title></head><body><main><div id="promo-banner"></div><section id="hero"><h1>Gear for every trail</h1></section><ul>${cards}</ul></main></body></html>`;
  }
}

async function startOrigin(): Promise<{ server: Server; url: string }> {
  const page = Buffer.from(bigPage());
  const server = createServer((req, res) => {
    if (req.url?.startsWith("/slow")) {
      // First half at once, the rest 300 ms later: time to first byte shows any buffering.
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.write(page.subarray(0, page.length >> 1));
      setTimeout(() => res.end(page.subarray(page.length >> 1)), 300);
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": page.length });
    res.end(page);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const PASSTHROUGH = (origin: string) => `export default { fetch(req) {
  const u = new URL(req.url); return fetch(new Request(${JSON.stringify(origin)} + u.pathname + u.search, req));
} };`;

interface Target {
  readonly name: string;
  readonly url: string;
  readonly path: string;
  readonly cookies?: readonly string[];
  readonly userAgent?: string;
  /** How many Durable Objects the target holds now (Northstar targets only). */
  readonly objects?: () => number;
  /** Calls counted so far by bench/counting.ts's entry (Northstar targets only). */
  readonly counts?: () => Promise<CallCounts>;
  /** CPU ms its workerd process has used so far (worker and objects together). */
  readonly cpu?: () => number;
  dispose(): Promise<void>;
}

const CRAWLER_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/** SQLite files under `dir`: one per Durable Object that was created. */
function sqliteFiles(dir: string): number {
  let count = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (entry.isFile() && entry.name.endsWith(".sqlite")) count++;
  return count;
}

async function workerTarget(name: string, script: string): Promise<Target> {
  const before = workerdChildren();
  const mf = new Miniflare({ modules: true, script, compatibilityDate: COMPAT, port: 0 });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  // Its workerd's CPU too: the floor Northstar's CPU per page is read against.
  const pid = [...workerdChildren()].find((p) => !before.has(p));
  return { name, url, path: "/big", ...(pid ? { cpu: () => cpuMs(pid) } : {}), dispose: () => mf.dispose() };
}

async function northstarTarget(
  name: string,
  origin: string,
  path: string,
  autoInject: boolean,
  visitors: "returning" | "new" | "crawler" = "returning",
): Promise<Target> {
  const persist = mkdtempSync(join(tmpdir(), "ns-bench-do-"));
  const before = workerdChildren();
  const { mf, url } = await startNorthstar(
    origin,
    { BEACON_AUTO_INJECT: autoInject ? "true" : "false" },
    persist,
    true,
  );
  // The workerd process this Miniflare spawned: the one that was not there before.
  const pid = [...workerdChildren()].find((p) => !before.has(p));
  if (!autoInject) {
    // The pass-through case: rules in which no placement applies to the benchmarked page.
    const doc = JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8"));
    doc.version = "bench-nochange";
    doc.placements["promo-banner"].pages = ["/", "/running", "/hiking", "/cart"];
    const parsed = parseRules(doc);
    if (!parsed.ok) throw new Error("bench rules invalid");
    // Published as `npm run rules -- publish` does, through the same store functions.
    const namespace = await mf.getKVNamespace("RULES");
    const kv: RulesKv = {
      get: async (key) => ({ ok: true, value: await namespace.get(key, "json") }),
      put: async (key, value) => {
        await namespace.put(key, JSON.stringify(value));
        return { ok: true };
      },
    };
    const now = new Date().toISOString();
    const published = await publishRules(kv, parsed.rules, { generatedAt: now }, now);
    if (!published.ok) throw new Error(`bench rules not published: ${published.message}`);
  }
  // Returning visitors (BENCH_VISITORS, default 20): the load spreads over their cookies, as real
  // traffic spreads over people.
  const cookies = visitors === "returning" ? await returningVisitors(`${url}${path}`, VISITORS) : [];
  // Measure what the name says: the intended rules serve, and nothing failed open.
  const check = await fetch(`${url}${path}`, {
    headers: { "user-agent": BROWSER_UA, cookie: cookies[0] ?? "" },
  });
  await check.arrayBuffer();
  const rules = check.headers.get("x-northstar-rules");
  const failOpen = check.headers.get("x-northstar-fail-open");
  if ((!autoInject && rules !== "bench-nochange") || (failOpen !== "none" && failOpen !== "deferred"))
    throw new Error(`${name}: rules ${rules}, fail-open ${failOpen}`);
  return {
    name,
    url,
    path,
    cookies,
    ...(visitors === "crawler" ? { userAgent: CRAWLER_UA } : {}),
    objects: () => sqliteFiles(persist),
    counts: () => readCounts(url),
    ...(pid ? { cpu: () => cpuMs(pid) } : {}),
    dispose: async () => {
      await mf.dispose();
      rmSync(persist, { recursive: true, force: true });
    },
  };
}

type Slice = Awaited<ReturnType<typeof loadSlice>>;

const load = (target: Target): Promise<Slice> =>
  loadSlice({
    url: `${target.url}${target.path}`,
    seconds: SECONDS,
    connections: CONNECTIONS,
    cookies: target.cookies ?? [],
    ...(target.userAgent ? { userAgent: target.userAgent } : {}),
  });

async function single(target: Target, path: string, count: number): Promise<{ total: number; ttfb: number }> {
  const totals: number[] = [];
  const ttfbs: number[] = [];
  const cookie = target.cookies?.[0];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    // identity: local workerd would otherwise gzip the body itself, buffering it first.
    const headers: Record<string, string> = {
      "accept-encoding": "identity",
      "user-agent": target.userAgent ?? BROWSER_UA,
    };
    if (cookie) headers.cookie = cookie;
    const res = await fetch(`${target.url}${path}`, { headers });
    const reader = res.body!.getReader();
    await reader.read();
    ttfbs.push(performance.now() - t0);
    while (!(await reader.read()).done) {}
    totals.push(performance.now() - t0);
  }
  return { total: median(totals), ttfb: median(ttfbs) };
}

export async function run(): Promise<string[]> {
  const { server, url: origin } = await startOrigin();
  const targets: Target[] = [
    { name: "origin", url: origin, path: "/big", dispose: async () => {} },
    await workerTarget("passthrough", PASSTHROUGH(origin)),
    await workerTarget("rewriter", ONE_SELECTOR_REWRITER(origin)),
    await northstarTarget("northstar", origin, "/", true),
    await northstarTarget("northstar-new", origin, "/", true, "new"),
    await northstarTarget("northstar-crawler", origin, "/", true, "crawler"),
    await northstarTarget("northstar-nochange", origin, "/big", false),
  ];
  try {
    const slices = new Map<string, Slice[]>(targets.map((t) => [t.name, []]));
    for (const t of targets) await load({ ...t }); // warm-up, discarded
    // Objects created per page, counted over the measured slices (the files appear as objects start).
    const objectsBefore = new Map(targets.map((t) => [t.name, t.objects?.() ?? 0]));
    const countsBefore = new Map<string, CallCounts>();
    for (const t of targets) if (t.counts) countsBefore.set(t.name, await t.counts());
    // CPU ms per page of each slice: the workerd process's own CPU over the slice's pages.
    const cpuPerPage = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of targets) {
        const cpu0 = t.cpu?.();
        const slice = await load(t);
        slices.get(t.name)!.push(slice);
        if (t.cpu && cpu0 !== undefined)
          cpuPerPage.get(t.name)!.push((t.cpu() - cpu0) / Math.max(1, slice.requests));
      }
    }
    // Let background writes (waitUntil, the page views written behind every 5 s) land before counting.
    await new Promise((resolve) => setTimeout(resolve, 6000));
    const calls = new Map<string, CallCounts>();
    for (const t of targets)
      if (t.counts) calls.set(t.name, countsBetween(countsBefore.get(t.name)!, await t.counts()));
    const objectsPer1000 = new Map(
      targets.map((t) => {
        const pages = slices.get(t.name)!.reduce((sum, x) => sum + x.requests, 0);
        const created = (t.objects?.() ?? 0) - objectsBefore.get(t.name)!;
        return [t.name, t.objects ? (1000 * created) / Math.max(1, pages) : null];
      }),
    );
    const singles = new Map<string, { total: number; ttfb: number }>();
    const slow = new Map<string, { total: number; ttfb: number }>();
    for (let round = 0; round < 3; round++) {
      for (const t of targets) {
        const s = await single(t, t.path, 30);
        const w = await single(t, "/slow", 3);
        const prev = singles.get(t.name);
        singles.set(
          t.name,
          prev ? { total: Math.min(prev.total, s.total), ttfb: Math.min(prev.ttfb, s.ttfb) } : s,
        );
        const prevSlow = slow.get(t.name);
        slow.set(t.name, prevSlow ? { total: prevSlow.total, ttfb: Math.min(prevSlow.ttfb, w.ttfb) } : w);
      }
    }
    const med = (name: string) => {
      const s = slices.get(name)!;
      return {
        spread: `${Math.min(...s.map((x) => x.rps)).toFixed(0)}–${Math.max(...s.map((x) => x.rps)).toFixed(0)}`,
        rps: median(s.map((x) => x.rps)),
        p50: median(s.map((x) => x.p50)),
        p99: median(s.map((x) => x.p99)),
      };
    };
    const pass = med("passthrough");
    const floor = med("rewriter");
    const lines = [
      `proxy bench: ${Buffer.byteLength(bigPage())} B page, ${CONNECTIONS} connections, ${ROUNDS}×${SECONDS}s interleaved slices, medians`,
      "target               req/s (slices)     p50ms  p99ms  single-ms  ×pass  ×rewriter  objects/1000 pages  slow-origin TTFB ms (×pass, +ms over pass)",
    ];
    for (const t of targets) {
      const m = med(t.name);
      const s = singles.get(t.name)!;
      const w = slow.get(t.name)!;
      lines.push(
        `${t.name.padEnd(20)} ${m.rps.toFixed(0).padStart(6)} (${m.spread.padStart(9)}) ${m.p50.toFixed(1).padStart(7)} ${m.p99.toFixed(1).padStart(6)} ${s.total.toFixed(2).padStart(10)}  ${(m.rps / pass.rps).toFixed(2).padStart(5)}  ${(m.rps / floor.rps).toFixed(2).padStart(9)}  ${(objectsPer1000.get(t.name)?.toFixed(0) ?? "–").padStart(18)}  ${w.ttfb.toFixed(1).padStart(8)} (${(w.ttfb / slow.get("passthrough")!.ttfb).toFixed(2)}, ${(w.ttfb - slow.get("passthrough")!.ttfb >= 0 ? "+" : "") + (w.ttfb - slow.get("passthrough")!.ttfb).toFixed(2)})`,
      );
    }
    lines.push(
      "",
      "calls per 1,000 pages, counted in workerd over the measured slices (bench/counting.ts); CPU ms per page is the",
      "target's whole workerd process (worker + its objects + HTTP), per slice: min–max (median) — an upper bound on billed CPU",
      "target               pages   DO requests  (alarms)  rows written  rows read  KV reads  KV writes  queue msgs  objects  CPU ms/page",
    );
    for (const t of targets) {
      const cpu = cpuPerPage.get(t.name)!;
      if (!t.counts && cpu.length === 0) continue;
      const c = calls.get(t.name);
      const pages = slices.get(t.name)!.reduce((sum, x) => sum + x.requests, 0);
      const per = (n: number | undefined) =>
        n === undefined ? "–" : ((1000 * n) / Math.max(1, pages)).toFixed(0);
      const cpuText = cpu.length
        ? `${Math.min(...cpu).toFixed(2)}–${Math.max(...cpu).toFixed(2)} (${median(cpu).toFixed(2)})`
        : "–";
      lines.push(
        `${t.name.padEnd(20)} ${String(pages).padStart(5)}  ${per(c?.doRequests).padStart(11)}  ${`(${per(c?.alarms)})`.padStart(8)}  ${per(c?.rowsWritten).padStart(12)}  ${per(c?.rowsRead).padStart(9)}  ${per(c?.kvReads).padStart(8)}  ${per(c?.kvWrites).padStart(9)}  ${per(c?.queueMessages).padStart(10)}  ${(objectsPer1000.get(t.name)?.toFixed(0) ?? "–").padStart(7)}  ${cpuText}`,
      );
    }
    const cpuOf = (name: string) => median(cpuPerPage.get(name) ?? []);
    if (cpuPerPage.get("rewriter")?.length)
      lines.push(
        `CPU ms per page × rewriter (medians): ${targets
          .filter((t) => t.name.startsWith("northstar") && cpuPerPage.get(t.name)?.length)
          .map((t) => `${t.name} ${(cpuOf(t.name) / cpuOf("rewriter")).toFixed(2)}`)
          .join(", ")}`,
      );
    const ns = singles.get("northstar")!;
    lines.push(
      `northstar single-request latency ×rewriter: ${(ns.total / singles.get("rewriter")!.total).toFixed(2)} (budget ≤ 1.3)`,
    );
    return lines;
  } finally {
    for (const t of targets) await t.dispose();
    server.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
