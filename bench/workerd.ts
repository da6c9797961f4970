/** Shared by the benchmarks: Northstar built as `wrangler deploy` would bundle it, in its own workerd. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import autocannon from "autocannon";
import { Miniflare } from "miniflare";
import { countingEntry, sinkEntry } from "./counting.ts";

export const ROOT = new URL("..", import.meta.url).pathname;
// The newest date the benchmark's workerd (miniflare 4, stable) accepts.
export const COMPAT = "2026-07-30";
/**
 * Where the bundle is built; BENCH_BUILD names a directory holding an `index.js` built elsewhere
 * instead (e.g. `wrangler deploy --dry-run --outdir <dir>` at an earlier commit), for a before/after
 * of the same bench. The bench writes its entry modules beside it.
 */
const PREBUILT = process.env.BENCH_BUILD;
const OUTDIR = PREBUILT ?? join(ROOT, ".wrangler/bench-build");
/** The top-level `compatibility_flags` of wrangler.toml, as deployed. */
const WORKER_FLAGS: string[] = JSON.parse(
  /^compatibility_flags\s*=\s*(\[.*\])\s*$/m.exec(readFileSync(join(ROOT, "wrangler.toml"), "utf8"))?.[1] ??
    "[]",
);

let built = false;
export function buildNorthstar(): string {
  if (!built && !PREBUILT) {
    execFileSync(
      "npx",
      ["wrangler", "deploy", "--dry-run", "--outdir", OUTDIR, "--config", "wrangler.toml"],
      {
        cwd: ROOT,
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
    built = true;
  }
  return join(OUTDIR, "index.js");
}

export const SERVER_KEY = "bench-server-key";

export async function startNorthstar(
  origin: string,
  vars: Record<string, string> = {},
  /** Where Durable Objects keep their SQLite files (one per object): lets a bench count objects. */
  durableObjectsPersist?: string,
  /**
   * Put bench/counting.ts's counting entry in front (Durable Object requests, SQLite rows and KV
   * calls counted); else its plain entry (nothing counted, the unbound EXPORT queue a sink).
   */
  counting = false,
  /** A directory holding an `index.js` built elsewhere (an A/B of two builds in one run); else the bench's build. */
  buildDir?: string,
): Promise<{ mf: Miniflare; url: string }> {
  const outdir = buildDir ?? OUTDIR;
  const built = buildDir ? join(buildDir, "index.js") : buildNorthstar();
  const mf = new Miniflare({
    ...(durableObjectsPersist ? { durableObjectsPersist } : {}),
    // Either entry imports the built worker unchanged: the counting one wraps its bindings, the
    // plain one only gives it a sink for the EXPORT queue the bench does not bind.
    modules: [
      { type: "ESModule", path: counting ? countingEntry(outdir) : sinkEntry(outdir) },
      { type: "ESModule", path: built },
    ],
    modulesRoot: outdir,
    compatibilityDate: COMPAT,
    // The worker's own flags (it runs without nodejs_compat: with it, every timer goes through
    // Node's timers module, CPU the deployed worker does not spend).
    compatibilityFlags: WORKER_FLAGS,
    port: 0,
    bindings: {
      ORIGIN: origin,
      NS_PREFIX: "/_ns",
      STORE_DEADLINE_MS: "50",
      ADMIN_TOKEN: "bench-admin-token",
      COOKIE_SECRET: "bench-cookie-secret-0123456789",
      IDENTITY_SECRET: "bench-identity-secret-0123456789",
      SERVER_API_KEY: SERVER_KEY,
      COOKIE_SECURE: "false",
      DEBUG_HEADERS: "true",
      ...vars,
    },
    kvNamespaces: ["RULES", "PROFILES"],
    durableObjects: {
      VISITOR: { className: "VisitorDO", useSQLite: true },
      EXPERIMENTS: { className: "ExperimentDO", useSQLite: true },
    },
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  return { mf, url };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

/** A browser's user agent: without one Northstar (rightly) treats the client as a crawler. */
export const BROWSER_UA =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0 Safari/537.36";

/** The floor for any rewriting proxy: a worker whose native HTMLRewriter replaces one selector. */
export const ONE_SELECTOR_REWRITER = (origin: string): string => `export default { async fetch(req) {
  const u = new URL(req.url);
  const res = await fetch(new Request(${JSON.stringify(origin)} + u.pathname + u.search, req));
  return new HTMLRewriter().on("#hero", { element(e) { e.setInnerContent("<h1>Hello runner</h1>", { html: true }); } }).transform(res);
} };`;

/** `count` returning visitors of a Northstar at `url`: the cookie each one's first page set. */
export async function returningVisitors(url: string, count: number): Promise<string[]> {
  const cookies: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await fetch(url, { headers: { "user-agent": BROWSER_UA } });
    await res.arrayBuffer();
    const set = res.headers.getSetCookie().find((c) => c.includes("ns_vid"));
    if (set) cookies.push(set.split(";")[0]!);
  }
  return cookies;
}

/** One load slice against `url`, the requests spread over `cookies` in turn (none: no cookie). */
export async function loadSlice(options: {
  url: string;
  seconds: number;
  connections: number;
  userAgent?: string;
  cookies?: readonly string[];
}): Promise<{ rps: number; p50: number; p99: number; requests: number }> {
  let n = 0;
  const cookies = options.cookies ?? [];
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.seconds,
    headers: { "user-agent": options.userAgent ?? BROWSER_UA },
    requests: [
      {
        setupRequest(req) {
          const cookie = cookies[n++ % Math.max(1, cookies.length)];
          return cookie ? { ...req, headers: { ...req.headers, cookie } } : req;
        },
      },
    ],
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
  };
}
