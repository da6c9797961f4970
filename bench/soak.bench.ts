/**
 * The memory soak: BENCH_SOAK_VISITORS (default 20,000) distinct visitors through `wrangler dev`,
 * each a first page without a cookie (a new visitor: no Durable Object) and a second page with the
 * cookie it was given (its object is made and its page view kept), BENCH_SOAK_CONCURRENCY (default
 * 10) at a time. Not part of `npm test`: it takes minutes.
 *
 * What it reports, sampled every tenth of the run:
 *   - the worker's JS heap after a garbage collection (asked over wrangler's inspector): every cache
 *     the worker and its objects keep in the isolate. This is what the ceiling checks
 *     (BENCH_SOAK_HEAP_CEILING_MB, default 64: half the 128 MB a Workers isolate may use).
 *   - the resident memory of the runtime process that runs the worker and its objects, and of
 *     wrangler's own front process (its proxy and inspector), each on its own. Local workerd keeps
 *     the objects touched in the last ~10 s of idleness in memory (as production does) and, past that,
 *     some native memory per object it ever created (docs in the README's speed section): the
 *     process figure grows with the number of objects and is reported, not checked.
 * Durable Object storage goes to a tmpfs (/dev/shm) when there is one: what is measured is memory,
 * and on a disk creating each new object's SQLite file is what the run waited on.
 *
 * Run: `npm run bench -- soak` (or `node bench/soak.bench.ts`).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BROWSER_UA, ROOT } from "./workerd.ts";

const VISITORS = Number(process.env.BENCH_SOAK_VISITORS ?? 20_000);
const HEAP_CEILING_MB = Number(process.env.BENCH_SOAK_HEAP_CEILING_MB ?? 64);
const CONCURRENCY = Number(process.env.BENCH_SOAK_CONCURRENCY ?? 10);

/** Every process under `pid`, itself included. */
function processTree(pid: number): number[] {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    try {
      const children = execFileSync("pgrep", ["-P", String(tree[i])], { encoding: "utf8" });
      for (const line of children.split("\n")) if (line.trim()) tree.push(Number(line));
    } catch {
      // pgrep exits 1 when a process has no children.
    }
  }
  return tree;
}

/** Resident memory, in MB, of each workerd process wrangler started: the runtime, and its front. */
function workerdRssMb(wrangler: ChildProcess): { runtime: number; front: number } {
  const found: Array<{ mb: number; objects: boolean }> = [];
  for (const pid of processTree(wrangler.pid!)) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      if (!comm.startsWith("workerd")) continue;
      const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      // The runtime is the process with the Durable Objects' storage open; the other one is
      // wrangler's front (its proxy worker and inspector proxy).
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (rss) found.push({ mb: Number(rss[1]) / 1024, objects: cmdline.includes("--inspector-addr") });
    } catch {
      // The process ended between the listing and the read.
    }
  }
  const sum = (xs: typeof found) => xs.reduce((total, x) => total + x.mb, 0);
  return { runtime: sum(found.filter((x) => x.objects)), front: sum(found.filter((x) => !x.objects)) };
}

/**
 * The worker isolate's JS heap after a full garbage collection, in MB, over the DevTools protocol
 * that `wrangler dev --inspector-port` serves. Null when the inspector does not answer.
 */
async function workerHeapMb(inspectorPort: number): Promise<number | null> {
  try {
    const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as Array<{
      webSocketDebuggerUrl: string;
    }>;
    // wrangler's inspector proxy refuses a connection without an allowed Origin (DNS rebinding).
    const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl, {
      headers: { origin: "http://127.0.0.1" },
    } as unknown as string[]);
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve);
      ws.addEventListener("error", reject);
    });
    let id = 0;
    const call = (method: string) =>
      new Promise<{ result?: { usedSize?: number } }>((resolve, reject) => {
        const mine = ++id;
        const timer = setTimeout(() => reject(new Error(`${method} unanswered`)), 5_000);
        ws.addEventListener("message", function answer(event) {
          const message = JSON.parse(String(event.data));
          if (message.id !== mine) return;
          clearTimeout(timer);
          ws.removeEventListener("message", answer);
          resolve(message);
        });
        ws.send(JSON.stringify({ id: mine, method }));
      });
    // Best effort: the figure is read either way, after a collection when the runtime makes one.
    await call("HeapProfiler.collectGarbage").catch(() => null);
    const usage = await call("Runtime.getHeapUsage");
    ws.close();
    return usage.result?.usedSize === undefined ? null : usage.result.usedSize / 1024 / 1024;
  } catch {
    return null;
  }
}

async function waitForHealth(url: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      const res = await fetch(`${url}/_ns/health`);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error("wrangler dev did not answer /_ns/health within 5 minutes");
}

/** One visitor: a first page without a cookie, then a second with the cookie it was given. */
async function oneVisitor(url: string): Promise<void> {
  const signal = AbortSignal.timeout(30_000);
  const first = await fetch(`${url}/`, { headers: { "user-agent": BROWSER_UA }, signal });
  await first.arrayBuffer();
  const set = first.headers.getSetCookie().find((c) => c.includes("ns_vid="));
  if (!set) throw new Error(`no visitor cookie (status ${first.status})`);
  const second = await fetch(`${url}/`, {
    headers: { "user-agent": BROWSER_UA, cookie: set.split(";")[0]! },
  });
  await second.arrayBuffer();
}

export async function run(): Promise<string[]> {
  const page = Buffer.from(
    `<!doctype html><html><head><title>Soak</title></head><body><div id="promo-banner"></div><section id="hero"><h1>Default hero</h1></section>${"<p>filler</p>".repeat(2000)}</body></html>`,
  );
  const origin = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": page.length });
    res.end(page);
  });
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  const port = 18_700 + Math.floor(Math.random() * 1000);
  const inspectorPort = port + 1000;
  const persist = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "ns-soak-"));
  // Its own process group, so the whole tree (npx, wrangler, workerd) ends with the run.
  const wrangler = spawn(
    "npx",
    [
      "wrangler",
      "dev",
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--inspector-port",
      String(inspectorPort),
      "--persist-to",
      persist,
      "--var",
      `ORIGIN:${originUrl}`,
    ],
    { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"], detached: true },
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(url);
    type Sample = { visitors: number; heap: number | null; runtime: number; front: number };
    const sample = async (visitors: number): Promise<Sample> => ({
      visitors,
      heap: await workerHeapMb(inspectorPort),
      ...workerdRssMb(wrangler),
    });
    const samples: Sample[] = [await sample(0)];
    const every = Math.max(1, Math.round(VISITORS / 10));
    let started = 0;
    let done = 0;
    let failures = 0;
    let sampling: Promise<void> = Promise.resolve();
    const t0 = performance.now();
    const worker = async () => {
      while (started < VISITORS) {
        started++;
        await oneVisitor(url).catch(() => {
          failures++;
        });
        done++;
        if (done % every === 0 && done < VISITORS) {
          const at = done;
          sampling = sampling.then(async () => {
            const s = await sample(at);
            samples.push(s);
            // Progress as it goes: a run cut short still says how far it got.
            console.error(`soak: ${describe(s)}`);
          });
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (performance.now() - t0) / 1000;
    await sampling;
    samples.push(await sample(VISITORS));
    const heaps = samples.map((s) => s.heap).filter((mb): mb is number => mb !== null);
    const peakHeap = heaps.length ? Math.max(...heaps) : null;
    const end = samples[samples.length - 1]!;
    const objectsMb = (end.runtime - samples[0]!.runtime) / Math.max(1, VISITORS);
    return [
      `soak: ${VISITORS} visitors (2 pages each, ${CONCURRENCY} at a time) through wrangler dev in ${seconds.toFixed(0)} s, ${failures} failed`,
      ...samples.map((s) => `  ${describe(s)}`),
      `worker JS heap after GC: end ${end.heap?.toFixed(1) ?? "?"} MB, peak ${peakHeap?.toFixed(1) ?? "?"} MB (ceiling ${HEAP_CEILING_MB} MB ${peakHeap !== null && peakHeap <= HEAP_CEILING_MB ? "✓" : "✗"})`,
      `runtime process: ${samples[0]!.runtime.toFixed(0)} MB at the start, ${end.runtime.toFixed(0)} MB at the end (${(1024 * objectsMb).toFixed(0)} KB per visitor's object over the run); wrangler's front: ${end.front.toFixed(0)} MB`,
    ];
  } finally {
    process.kill(-wrangler.pid!, "SIGTERM");
    origin.close();
    rmSync(persist, { recursive: true, force: true });
  }
}

function describe(s: { visitors: number; heap: number | null; runtime: number; front: number }): string {
  return `${s.visitors} visitors: worker heap ${s.heap?.toFixed(1) ?? "?"} MB, runtime ${s.runtime.toFixed(0)} MB, wrangler front ${s.front.toFixed(0)} MB`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
