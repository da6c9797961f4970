/**
 * The proxy benchmark: the same ~100 KB page through each target, measured in one interleaved run
 * (A B C D A B C D …) so machine noise falls on all of them alike. Each worker runs in its own
 * workerd (one Miniflare each), fetching a real origin on loopback, with no `wrangler dev` hop in
 * front.
 *
 *   origin       the origin server itself (node:http)
 *   passthrough  a worker that only fetches the origin
 *   rewriter     a worker whose native HTMLRewriter replaces one selector, `#hero` (the floor for
 *                any rewriting proxy, and what issue 17's table compares with)
 *   ns-returning       Northstar, rules that fill one placement on "/" (`#hero`, as the rewriter),
 *                      returning visitors (cookie): KV + Durable Object + decide. Northstar also
 *                      adds its beacon tag before `</body>`, as it does on every page it measures
 *                      (the one-selector rewriter adds nothing there)
 *   ns-new             the same rules, every request a new visitor (no cookie): decide + a signed cookie, no object
 *   ns-crawler         the same rules, a crawler's user agent (no cookie, no beacon)
 *   ns-returning-demo  the demo rules on "/", returning visitors: three placements (`#hero`,
 *                      `#promo-banner`, `.featured .grid`) and the beacon, to keep their cost visible
 *   ns-nochange        Northstar on a URL with no placement and auto-injection off (the pass-through path)
 *
 * Requests/s, latency, first byte and CPU ms per page are measured on plain builds of the worker.
 * The calls per page are counted in a separate pass, on a second instance of each Northstar target
 * that runs behind bench/counting.ts's entry (it wraps the bindings to count calls, which costs CPU
 * of its own: the pass prints what, against the plain instance, interleaved). Each Northstar
 * target keeps its Durable Objects' SQLite files in its own directory, one file per object: the
 * objects created per 1,000 pages are counted from them. The counted pass also plays what pages alone
 * do not show: new visitors' whole first visits (the page, then the beacon's first call that creates
 * their object) and returning visitors' own beacon batches (a product view each).
 *
 * The slow-origin first byte: the origin sends half the page at once and the rest 300 ms later
 * (`?slow` on the target's own page, so Northstar's page is the one whose `#hero` its rules fill);
 * SLOW_ROUNDS rounds, one request per target per round, the targets' order rotated each round;
 * the median per target.
 *
 * Run: `npm run bench -- proxy` (or `node bench/proxy.bench.ts`). Environment: BENCH_SECONDS (per
 * slice, default 4), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 10), BENCH_VISITORS
 * (default 20), BENCH_SLOW_ROUNDS (default 21), BENCH_COUNT_ROUNDS (counted pass, default 2),
 * BENCH_FIRST_VISITS (new visitors whose page and beacon's first call the counted pass counts, and
 * returning visitors' beacon batches it counts, default 100 each).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
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
const SLOW_ROUNDS = Number(process.env.BENCH_SLOW_ROUNDS ?? 21);
/** New visitors whose whole first visit (page, then the beacon's first call) the counted pass counts. */
const FIRST_VISITS = Number(process.env.BENCH_FIRST_VISITS ?? 100);
const COUNT_ROUNDS = Number(process.env.BENCH_COUNT_ROUNDS ?? 2);

export function bigPage(): string {
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

/** A request for the slow origin: any page asked with `?slow`. */
export function isSlow(url: string | undefined): boolean {
  return new URL(url ?? "/", "http://origin").searchParams.has("slow");
}

/** The target's own page, from the slow origin. */
export const slowPath = (path: string): string => `${path}${path.includes("?") ? "&" : "?"}slow`;

/**
 * The bench's origin: the big page, or slowly (`?slow`). `onSlow` is told, on this process's clock,
 * when a slow request arrived and when its first half was written (bench/page-ab.ts splits the
 * first byte with it).
 */
export async function startOrigin(
  onSlow?: (req: IncomingMessage, arrivedAt: number, wroteAt: number) => void,
): Promise<{ server: Server; url: string }> {
  const page = Buffer.from(bigPage());
  const server = createServer((req, res) => {
    if (isSlow(req.url)) {
      const arrivedAt = performance.now();
      // First half at once, the rest 300 ms later: time to first byte shows any buffering.
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.write(page.subarray(0, page.length >> 1));
      onSlow?.(req, arrivedAt, performance.now());
      setTimeout(() => res.end(page.subarray(page.length >> 1)), 300);
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": page.length });
    res.end(page);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export const PASSTHROUGH = (origin: string) => `export default { fetch(req) {
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
  /** Calls counted so far by bench/counting.ts's entry (counted Northstar instances only). */
  readonly counts?: () => Promise<CallCounts>;
  /** CPU ms its workerd process has used so far (worker and objects together). */
  readonly cpu?: () => number;
  dispose(): Promise<void>;
}

export const CRAWLER_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

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

/**
 * Which rules a Northstar target serves: the demo rules as bundled, the demo rules with one
 * placement on "/" (`#hero`: the page issue 17's table compares, one fragment into `#hero`), or
 * rules in which no placement applies to the benchmarked page.
 */
export type BenchRules = "demo" | "hero" | "nochange";

interface NorthstarSpec {
  readonly name: string;
  readonly path: string;
  readonly rules: BenchRules;
  readonly visitors: "returning" | "new" | "crawler";
}

const NORTHSTAR: readonly NorthstarSpec[] = [
  { name: "ns-returning", path: "/", rules: "hero", visitors: "returning" },
  { name: "ns-new", path: "/", rules: "hero", visitors: "new" },
  { name: "ns-crawler", path: "/", rules: "hero", visitors: "crawler" },
  { name: "ns-returning-demo", path: "/", rules: "demo", visitors: "returning" },
  { name: "ns-nochange", path: "/big", rules: "nochange", visitors: "returning" },
];

/** The demo rules edited for `which`, published as `npm run rules -- publish` does (null: as bundled). */
export async function publishBenchRules(mf: Miniflare, which: BenchRules): Promise<string | null> {
  if (which === "demo") return null;
  const doc = JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8"));
  doc.version = `bench-${which}`;
  // The banner shows on every page in the demo, the featured shelf on "/": both moved off it.
  doc.placements["promo-banner"].pages = ["/running", "/hiking", "/cart"];
  if (which === "hero") doc.placements.featured.pages = ["/cart"];
  const parsed = parseRules(doc);
  if (!parsed.ok) throw new Error("bench rules invalid");
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
  return doc.version;
}

/** One Northstar instance for `spec`; `counted` puts bench/counting.ts's entry in front. */
async function northstarTarget(spec: NorthstarSpec, origin: string, counted: boolean): Promise<Target> {
  const name = counted ? `${spec.name} (counted)` : spec.name;
  const persist = mkdtempSync(join(tmpdir(), "ns-bench-do-"));
  const before = workerdChildren();
  const autoInject = spec.rules !== "nochange";
  const { mf, url } = await startNorthstar(
    origin,
    { BEACON_AUTO_INJECT: autoInject ? "true" : "false" },
    persist,
    counted,
  );
  // The workerd process this Miniflare spawned: the one that was not there before.
  const pid = [...workerdChildren()].find((p) => !before.has(p));
  // Published before the first page, so the isolate's first load reads it.
  const version = await publishBenchRules(mf, spec.rules);
  // Returning visitors (BENCH_VISITORS, default 20): the load spreads over their cookies, as real
  // traffic spreads over people.
  const cookies =
    spec.visitors === "returning" ? await returningVisitors(`${url}${spec.path}`, VISITORS) : [];
  const userAgent = spec.visitors === "crawler" ? CRAWLER_UA : BROWSER_UA;
  // Measure what the name says: the intended rules serve, the slots filled, and nothing failed open.
  const check = await fetch(`${url}${spec.path}`, {
    headers: { "user-agent": userAgent, cookie: cookies[0] ?? "" },
  });
  const html = await check.text();
  const rules = check.headers.get("x-northstar-rules");
  const failOpen = check.headers.get("x-northstar-fail-open");
  if ((version !== null && rules !== version) || (failOpen !== "none" && failOpen !== "deferred"))
    throw new Error(`${name}: rules ${rules}, fail-open ${failOpen}`);
  // One placement on "/": the banner's slot stays as the origin sent it (the hero's is filled
  // unless the visitor is in the experiment's holdout, which has no default).
  if (spec.rules === "hero" && !html.includes('<div id="promo-banner"></div>'))
    throw new Error(`${name}: more than one placement filled on ${spec.path}`);
  return {
    name,
    url,
    path: spec.path,
    cookies,
    ...(spec.visitors === "crawler" ? { userAgent: CRAWLER_UA } : {}),
    objects: () => sqliteFiles(persist),
    ...(counted ? { counts: () => readCounts(url) } : {}),
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

/** One request: ms to the first body bytes and to the last. */
async function timedRequest(target: Target, path: string): Promise<{ total: number; ttfb: number }> {
  const t0 = performance.now();
  // identity: local workerd would otherwise gzip the body itself, buffering it first.
  const headers: Record<string, string> = {
    "accept-encoding": "identity",
    "user-agent": target.userAgent ?? BROWSER_UA,
  };
  const cookie = target.cookies?.[0];
  if (cookie) headers.cookie = cookie;
  const res = await fetch(`${target.url}${path}`, { headers });
  const reader = res.body!.getReader();
  await reader.read();
  const ttfb = performance.now() - t0;
  while (!(await reader.read()).done) {}
  return { total: performance.now() - t0, ttfb };
}

async function single(target: Target, path: string, count: number): Promise<{ total: number; ttfb: number }> {
  const totals: number[] = [];
  const ttfbs: number[] = [];
  for (let i = 0; i < count; i++) {
    const { total, ttfb } = await timedRequest(target, path);
    totals.push(total);
    ttfbs.push(ttfb);
  }
  return { total: median(totals), ttfb: median(ttfbs) };
}

/** Slices of every target in turn, `rounds` times after one warm-up round; CPU ms per page of each slice. */
async function interleaved(
  targets: readonly Target[],
  rounds: number,
): Promise<{ slices: Map<string, Slice[]>; cpuPerPage: Map<string, number[]> }> {
  const slices = new Map<string, Slice[]>(targets.map((t) => [t.name, []]));
  const cpuPerPage = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (const t of targets) await load(t); // warm-up, discarded
  for (let round = 0; round < rounds; round++) {
    for (const t of targets) {
      const cpu0 = t.cpu?.();
      const slice = await load(t);
      slices.get(t.name)!.push(slice);
      if (t.cpu && cpu0 !== undefined)
        cpuPerPage.get(t.name)!.push((t.cpu() - cpu0) / Math.max(1, slice.requests));
    }
  }
  return { slices, cpuPerPage };
}

const pagesOf = (slices: readonly Slice[]) => slices.reduce((sum, x) => sum + x.requests, 0);

const cpuText = (cpu: readonly number[]) =>
  cpu.length
    ? `${Math.min(...cpu).toFixed(2)}–${Math.max(...cpu).toFixed(2)} (${median(cpu).toFixed(2)})`
    : "–";

/**
 * The counted pass: a counting instance of each Northstar target beside a plain one, slices
 * interleaved plain, counted, plain, counted …, so the calls per page are counted on the same load
 * and what the counting entry itself costs is measured rather than assumed.
 */
async function countedPass(
  origin: string,
  plain: ReadonlyMap<string, Target>,
): Promise<{ lines: string[]; calls: Map<string, { counts: CallCounts; pages: number; objects: number }> }> {
  const counted: Target[] = [];
  try {
    for (const spec of NORTHSTAR) counted.push(await northstarTarget(spec, origin, true));
    const pairs = counted.flatMap((c, i) => [plain.get(NORTHSTAR[i]!.name)!, c]);
    for (const t of counted) await load(t); // warm-up, discarded (the plain ones are warm)
    const objectsBefore = new Map(counted.map((t) => [t.name, t.objects!()]));
    const countsBefore = new Map<string, CallCounts>();
    for (const t of counted) countsBefore.set(t.name, await t.counts!());
    const slices = new Map<string, Slice[]>(pairs.map((t) => [t.name, []]));
    const cpu = new Map<string, number[]>(pairs.map((t) => [t.name, []]));
    for (let round = 0; round < COUNT_ROUNDS; round++) {
      for (const t of pairs) {
        const cpu0 = t.cpu?.();
        const slice = await load(t);
        slices.get(t.name)!.push(slice);
        if (t.cpu && cpu0 !== undefined)
          cpu.get(t.name)!.push((t.cpu() - cpu0) / Math.max(1, slice.requests));
      }
    }
    // Let background writes (waitUntil, the page views written behind every 5 s) land before counting.
    await new Promise((resolve) => setTimeout(resolve, 6000));
    const calls = new Map<string, { counts: CallCounts; pages: number; objects: number }>();
    const lines = [
      "",
      `what the counting entry costs (bench/counting.ts), ${COUNT_ROUNDS}×${SECONDS}s slices interleaved plain, counted: req/s and CPU ms/page medians`,
      "target               plain req/s  counted req/s  counted ×plain  plain CPU  counted CPU  CPU +ms/page",
    ];
    for (const [i, spec] of NORTHSTAR.entries()) {
      const c = counted[i]!;
      const pages = pagesOf(slices.get(c.name)!);
      calls.set(spec.name, {
        counts: countsBetween(countsBefore.get(c.name)!, await c.counts!()),
        pages,
        objects: (1000 * (c.objects!() - objectsBefore.get(c.name)!)) / Math.max(1, pages),
      });
      const plainRps = median(slices.get(spec.name)!.map((x) => x.rps));
      const countedRps = median(slices.get(c.name)!.map((x) => x.rps));
      const plainCpu = median(cpu.get(spec.name)!);
      const countedCpu = median(cpu.get(c.name)!);
      lines.push(
        `${spec.name.padEnd(20)} ${plainRps.toFixed(0).padStart(11)}  ${countedRps.toFixed(0).padStart(13)}  ${(countedRps / plainRps).toFixed(2).padStart(14)}  ${plainCpu.toFixed(2).padStart(9)}  ${countedCpu.toFixed(2).padStart(11)}  ${(countedCpu - plainCpu >= 0 ? "+" : "") + (countedCpu - plainCpu).toFixed(2)}`,
      );
    }
    const newVisitors = counted[NORTHSTAR.findIndex((spec) => spec.visitors === "new")];
    if (newVisitors) lines.push(...(await firstVisits(newVisitors, FIRST_VISITS)));
    const returning = counted[NORTHSTAR.findIndex((spec) => spec.visitors === "returning")];
    if (returning) lines.push(...(await beaconBatches(returning, FIRST_VISITS)));
    return { lines, calls };
  } finally {
    for (const t of counted) await t.dispose();
  }
}

/**
 * What a new visitor costs in all, which a page alone does not show: their object is created by
 * the beacon's first call (record 12), not by the page. `count` new browsers in turn, each loading
 * the page without a cookie, then sending what the beacon's first call sends (the page view and the
 * tag's `data-first` claim, as test/workerd/first-page.test.ts plays it); the calls counted per
 * 1,000 such visits, once the object's writes behind (5 s) and its outbox sends have landed.
 */
async function firstVisits(target: Target, count: number): Promise<string[]> {
  const before = await target.counts!();
  const objectsBefore = target.objects!();
  let accepted = 0;
  for (let i = 0; i < count; i++) {
    const page = await fetch(`${target.url}${target.path}`, { headers: { "user-agent": BROWSER_UA } });
    const html = await page.text();
    const cookie = page.headers
      .getSetCookie()
      .find((c) => c.includes("ns_vid"))
      ?.split(";")[0];
    const claim = /data-first="([^"]*)"/.exec(html)?.[1];
    if (!cookie) throw new Error(`${target.name}: a first page set no visitor cookie`);
    const firstPage = claim
      ?.replace(/&quot;/g, '"')
      .replace(/&lt;/g, "<")
      .replace(/&gt;/g, ">")
      .replace(/&amp;/g, "&");
    const beacon = await fetch(`${target.url}/_ns/v1/events`, {
      method: "POST",
      headers: { "user-agent": BROWSER_UA, cookie, "content-type": "text/plain;charset=UTF-8" },
      body: JSON.stringify({
        sentAt: Date.now(),
        events: [{ id: `first-${i}-${Date.now()}`, type: "page_view", props: { path: target.path } }],
        ...(firstPage ? { firstPage } : {}),
      }),
    });
    await beacon.arrayBuffer();
    if (beacon.status === 202) accepted++;
  }
  if (accepted !== count)
    throw new Error(`${target.name}: ${count - accepted} beacon first calls not accepted`);
  await new Promise((resolve) => setTimeout(resolve, 6000));
  const c = countsBetween(before, await target.counts!());
  const per = (n: number) => ((1000 * n) / count).toFixed(0);
  return [
    "",
    `a new visitor's first visit in all (the page without a cookie, then the beacon's first call: its page view and the first page's claim), ${count} visitors in turn, per 1,000 visitors:`,
    "target               visitors  DO requests  (alarms)  rows written  rows read  KV reads  KV writes  queue msgs  objects",
    `${target.name.replace(" (counted)", "").padEnd(20)} ${String(count).padStart(8)}  ${per(c.doRequests).padStart(11)}  ${`(${per(c.alarms)})`.padStart(8)}  ${per(c.rowsWritten).padStart(12)}  ${per(c.rowsRead).padStart(9)}  ${per(c.kvReads).padStart(8)}  ${per(c.kvWrites).padStart(9)}  ${per(c.queueMessages).padStart(10)}  ${per(target.objects!() - objectsBefore).padStart(7)}`,
  ];
}

/**
 * What a returning visitor's own beacon batch costs, which the pages do not show (the load runs no
 * script): `count` batches of one event, a product view as the beacon sends it from a product page
 * (an acknowledged event: its log row, and its export line in the batch's outbox row, then sent),
 * spread over the returning visitors in turn; the calls counted per 1,000 batches, once the
 * object's writes and sends have landed.
 */
async function beaconBatches(target: Target, count: number): Promise<string[]> {
  const cookies = target.cookies ?? [];
  if (cookies.length === 0) return [];
  const before = await target.counts!();
  for (let i = 0; i < count; i++) {
    const batch = await fetch(`${target.url}/_ns/v1/events`, {
      method: "POST",
      headers: {
        "user-agent": BROWSER_UA,
        cookie: cookies[i % cookies.length]!,
        "content-type": "text/plain;charset=UTF-8",
      },
      body: JSON.stringify({
        sentAt: Date.now(),
        events: [
          {
            id: `batch-${i}-${Date.now()}`,
            type: "product_view",
            ts: Date.now(),
            channel: "web",
            props: { path: "/products/trail-runner-2", productId: "trail-runner-2", category: "running" },
          },
        ],
      }),
    });
    await batch.arrayBuffer();
    if (batch.status !== 202) throw new Error(`${target.name}: a beacon batch answered ${batch.status}`);
  }
  await new Promise((resolve) => setTimeout(resolve, 6000));
  const c = countsBetween(before, await target.counts!());
  const per = (n: number) => ((1000 * n) / count).toFixed(0);
  return [
    "",
    `a returning visitor's beacon batch (one event: a product view), ${count} batches over ${cookies.length} visitors in turn, per 1,000 batches:`,
    "target               batches  DO requests  (alarms)  rows written  rows read  KV reads  KV writes  queue msgs",
    `${target.name.replace(" (counted)", "").padEnd(20)} ${String(count).padStart(7)}  ${per(c.doRequests).padStart(11)}  ${`(${per(c.alarms)})`.padStart(8)}  ${per(c.rowsWritten).padStart(12)}  ${per(c.rowsRead).padStart(9)}  ${per(c.kvReads).padStart(8)}  ${per(c.kvWrites).padStart(9)}  ${per(c.queueMessages).padStart(10)}`,
  ];
}

export async function run(): Promise<string[]> {
  const { server, url: origin } = await startOrigin();
  const targets: Target[] = [
    { name: "origin", url: origin, path: "/big", dispose: async () => {} },
    await workerTarget("passthrough", PASSTHROUGH(origin)),
    await workerTarget("rewriter", ONE_SELECTOR_REWRITER(origin)),
  ];
  try {
    for (const spec of NORTHSTAR) targets.push(await northstarTarget(spec, origin, false));
    const { slices, cpuPerPage } = await interleaved(targets, ROUNDS);
    // Single requests: 30 per target per round, the min of three rounds' medians.
    const singles = new Map<string, { total: number; ttfb: number }>();
    for (let round = 0; round < 3; round++) {
      for (const t of targets) {
        const s = await single(t, t.path, 30);
        const prev = singles.get(t.name);
        singles.set(
          t.name,
          prev ? { total: Math.min(prev.total, s.total), ttfb: Math.min(prev.ttfb, s.ttfb) } : s,
        );
      }
    }
    // The slow origin's first byte: one request per target per round, the order rotated each round.
    const slowTtfb = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    for (let round = 0; round < SLOW_ROUNDS; round++) {
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(round + k) % targets.length]!;
        slowTtfb.get(t.name)!.push((await timedRequest(t, slowPath(t.path))).ttfb);
      }
    }
    const slow = new Map([...slowTtfb].map(([name, xs]) => [name, median(xs)]));
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
    const slowPass = slow.get("passthrough")!;
    const counting = await countedPass(origin, new Map(targets.map((t) => [t.name, t])));
    const objectsPer1000 = (name: string) => counting.calls.get(name)?.objects.toFixed(0) ?? "–";
    const lines = [
      `proxy bench: ${Buffer.byteLength(bigPage())} B page, ${CONNECTIONS} connections, ${ROUNDS}×${SECONDS}s interleaved slices, medians; slow-origin first byte: median of ${SLOW_ROUNDS} interleaved requests`,
      "target               req/s (slices)     p50ms  p99ms  single-ms  ×pass  ×rewriter  objects/1000 pages  slow-origin TTFB ms (×pass, +ms over pass)",
    ];
    for (const t of targets) {
      const m = med(t.name);
      const s = singles.get(t.name)!;
      const w = slow.get(t.name)!;
      lines.push(
        `${t.name.padEnd(20)} ${m.rps.toFixed(0).padStart(6)} (${m.spread.padStart(9)}) ${m.p50.toFixed(1).padStart(7)} ${m.p99.toFixed(1).padStart(6)} ${s.total.toFixed(2).padStart(10)}  ${(m.rps / pass.rps).toFixed(2).padStart(5)}  ${(m.rps / floor.rps).toFixed(2).padStart(9)}  ${objectsPer1000(t.name).padStart(18)}  ${w.toFixed(1).padStart(8)} (${(w / slowPass).toFixed(2)}, ${(w - slowPass >= 0 ? "+" : "") + (w - slowPass).toFixed(2)})`,
      );
    }
    lines.push(
      "",
      "calls per 1,000 pages, counted in workerd in the counted pass (bench/counting.ts; its pages below); CPU ms per page is",
      "the plain target's whole workerd process (worker + its objects + HTTP) over the slices above: min–max (median) — an upper bound on billed CPU",
      "target               pages   DO requests  (alarms)  rows written  rows read  KV reads  KV writes  queue msgs  objects  CPU ms/page",
    );
    for (const t of targets) {
      const cpu = cpuPerPage.get(t.name)!;
      if (cpu.length === 0) continue;
      const counted = counting.calls.get(t.name);
      const c = counted?.counts;
      const pages = counted?.pages ?? pagesOf(slices.get(t.name)!);
      const per = (n: number | undefined) =>
        n === undefined ? "–" : ((1000 * n) / Math.max(1, pages)).toFixed(0);
      lines.push(
        `${t.name.padEnd(20)} ${String(pages).padStart(5)}  ${per(c?.doRequests).padStart(11)}  ${`(${per(c?.alarms)})`.padStart(8)}  ${per(c?.rowsWritten).padStart(12)}  ${per(c?.rowsRead).padStart(9)}  ${per(c?.kvReads).padStart(8)}  ${per(c?.kvWrites).padStart(9)}  ${per(c?.queueMessages).padStart(10)}  ${(counted?.objects.toFixed(0) ?? "–").padStart(7)}  ${cpuText(cpu)}`,
      );
    }
    const cpuOf = (name: string) => median(cpuPerPage.get(name) ?? []);
    if (cpuPerPage.get("rewriter")?.length)
      lines.push(
        `CPU ms per page × rewriter (medians): ${targets
          .filter((t) => t.name.startsWith("ns-") && cpuPerPage.get(t.name)?.length)
          .map((t) => `${t.name} ${(cpuOf(t.name) / cpuOf("rewriter")).toFixed(2)}`)
          .join(", ")}`,
      );
    lines.push(...counting.lines);
    const ratio = (name: string) => med(name).rps / floor.rps;
    const ns = singles.get("ns-returning")!;
    lines.push(
      "",
      `budgets: returning ×rewriter ${ratio("ns-returning").toFixed(2)} (≥ 0.90), new ${ratio("ns-new").toFixed(2)} (≥ 0.85), crawler ${ratio("ns-crawler").toFixed(2)}; ` +
        `slow-origin first byte ×pass returning ${(slow.get("ns-returning")! / slowPass).toFixed(2)}, new ${(slow.get("ns-new")! / slowPass).toFixed(2)}, crawler ${(slow.get("ns-crawler")! / slowPass).toFixed(2)} (≤ 1.1; the rewriter ${(slow.get("rewriter")! / slowPass).toFixed(2)}); ` +
        `single request ×rewriter ${(ns.total / singles.get("rewriter")!.total).toFixed(2)} (≤ 1.3); ` +
        `nothing to change ×pass ${(med("ns-nochange").rps / med("passthrough").rps).toFixed(2)} (≥ 0.95)`,
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
