/**
 * The memory soak: BENCH_SOAK_VISITORS (default 20,000) distinct visitors through `wrangler dev`,
 * each a first page without a cookie (a new visitor: no Durable Object) and a second page with the
 * cookie it was given (its object is made and its page view kept), 10 at a time. The resident
 * memory of wrangler's workerd processes is sampled as it goes; the run ends with the figure at the
 * end and the peak, against the ceiling stated in the README (BENCH_SOAK_CEILING_MB, default 512).
 * Not part of `npm test`: it takes minutes.
 *
 * Run: `npm run bench -- soak` (or `node bench/soak.bench.ts`).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BROWSER_UA, ROOT } from "./workerd.ts";

const VISITORS = Number(process.env.BENCH_SOAK_VISITORS ?? 20_000);
const CEILING_MB = Number(process.env.BENCH_SOAK_CEILING_MB ?? 512);
const CONCURRENCY = 10;

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

/** Resident memory, in MB, of the workerd processes wrangler started. */
function workerdRssMb(wrangler: ChildProcess): number {
  let kb = 0;
  for (const pid of processTree(wrangler.pid!)) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      if (!comm.startsWith("workerd")) continue;
      const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (rss) kb += Number(rss[1]);
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return kb / 1024;
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
  const persist = mkdtempSync(join(tmpdir(), "ns-soak-"));
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
    const samples: Array<[number, number]> = [[0, workerdRssMb(wrangler)]];
    let next = 0;
    let failures = 0;
    const started = performance.now();
    const worker = async () => {
      while (next < VISITORS) {
        next++;
        await oneVisitor(url).catch(() => {
          failures++;
        });
        if (next % 2000 === 0) {
          samples.push([next, workerdRssMb(wrangler)]);
          // Progress as it goes: a run cut short still says how far it got.
          console.error(`soak: ${next} visitors, workerd ${samples[samples.length - 1]![1].toFixed(0)} MB`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (performance.now() - started) / 1000;
    samples.push([VISITORS, workerdRssMb(wrangler)]);
    const peak = Math.max(...samples.map(([, mb]) => mb));
    const end = samples[samples.length - 1]![1];
    return [
      `soak: ${VISITORS} visitors (2 pages each) through wrangler dev in ${seconds.toFixed(0)} s, ${failures} failed`,
      `workerd resident memory, MB by visitors: ${samples.map(([n, mb]) => `${n}: ${mb.toFixed(0)}`).join(", ")}`,
      `end ${end.toFixed(0)} MB, peak ${peak.toFixed(0)} MB (ceiling ${CEILING_MB} MB ${peak <= CEILING_MB ? "✓" : "✗"})`,
    ];
  } finally {
    process.kill(-wrangler.pid!, "SIGTERM");
    origin.close();
    rmSync(persist, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
