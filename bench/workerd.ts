/** Shared by the benchmarks: Northstar built as `wrangler deploy` would bundle it, in its own workerd. */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { Miniflare } from "miniflare";

export const ROOT = new URL("..", import.meta.url).pathname;
// The newest date the benchmark's workerd (miniflare 4, stable) accepts.
export const COMPAT = "2026-07-30";
const OUTDIR = join(ROOT, ".wrangler/bench-build");

let built = false;
export function buildNorthstar(): string {
  if (!built) {
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
): Promise<{ mf: Miniflare; url: string }> {
  const mf = new Miniflare({
    modules: [{ type: "ESModule", path: buildNorthstar() }],
    modulesRoot: OUTDIR,
    compatibilityDate: COMPAT,
    compatibilityFlags: ["nodejs_compat"],
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
