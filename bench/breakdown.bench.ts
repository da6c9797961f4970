/**
 * Where a personalized page's cost goes: Northstar on the same ~100 KB page in variants that each
 * leave one part out, against the one-selector rewriter, in one interleaved run.
 *
 *   returning      a returning visitor: cookie, traits, the visitor's object, decide, beacon
 *   no-beacon      the same without beacon injection (and so without the proxy's page view)
 *   quiet-headers  the same with DEBUG_HEADERS=false (no Server-Timing, no diagnostic headers)
 *   crawler        no cookie, no traits, no visitor's object: decide and rewriting only
 *
 * Run: `npm run bench -- breakdown`. BENCH_SECONDS (per slice, default 3), BENCH_ROUNDS (default 4).
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Miniflare } from "miniflare";
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

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const CRAWLER_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

interface Variant {
  readonly name: string;
  readonly url: string;
  readonly userAgent: string;
  readonly cookies: readonly string[];
  dispose(): Promise<void>;
}

async function northstar(
  name: string,
  origin: string,
  vars: Record<string, string>,
  crawler = false,
): Promise<Variant> {
  const { mf, url } = await startNorthstar(origin, vars);
  const cookies = crawler ? [] : await returningVisitors(`${url}/`, 20);
  return { name, url, userAgent: crawler ? CRAWLER_UA : BROWSER_UA, cookies, dispose: () => mf.dispose() };
}

export async function run(): Promise<string[]> {
  const page = readFileSync(join(ROOT, "demo/site/big.html"));
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": page.length });
    res.end(page);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const rewriter = new Miniflare({
    modules: true,
    compatibilityDate: COMPAT,
    port: 0,
    script: ONE_SELECTOR_REWRITER(origin),
  });
  const variants: Variant[] = [
    {
      name: "rewriter",
      url: (await rewriter.ready).toString().replace(/\/$/, ""),
      userAgent: BROWSER_UA,
      cookies: [],
      dispose: () => rewriter.dispose(),
    },
    await northstar("returning", origin, {}),
    await northstar("no-beacon", origin, { BEACON_AUTO_INJECT: "false" }),
    await northstar("quiet-headers", origin, { DEBUG_HEADERS: "false" }),
    await northstar("crawler", origin, {}, true),
  ];
  try {
    const rps = new Map<string, number[]>(variants.map((v) => [v.name, []]));
    for (let round = 0; round <= ROUNDS; round++) {
      for (const v of variants) {
        const result = await loadSlice({
          url: `${v.url}/`,
          seconds: SECONDS,
          connections: 10,
          userAgent: v.userAgent,
          cookies: v.cookies,
        });
        if (round > 0) rps.get(v.name)!.push(result.rps); // round 0 warms up
      }
    }
    const floor = median(rps.get("rewriter")!);
    const lines = [`breakdown: ${page.length} B page, ${ROUNDS}×${SECONDS}s interleaved slices, medians`];
    for (const v of variants) {
      const m = median(rps.get(v.name)!);
      lines.push(
        `${v.name.padEnd(14)} ${m.toFixed(0).padStart(6)} req/s  ${(m / floor).toFixed(2)}× rewriter`,
      );
    }
    return lines;
  } finally {
    for (const v of variants) await v.dispose();
    server.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
