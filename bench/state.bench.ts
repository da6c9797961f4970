/**
 * Visitor state: events per second into one visitor's Durable Object and spread over 100
 * visitors, and the latency of the decision path's one Durable Object call (measured as the
 * difference between a returning visitor's page, which makes that call, and a crawler's page,
 * which makes none, on the same worker). Each through Northstar's HTTP API in its own workerd.
 *
 * Run: `npm run bench -- state` or `node bench/state.bench.ts`.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { median, percentile, SERVER_KEY, startNorthstar } from "./workerd.ts";

const BATCHES = Number(process.env.BENCH_BATCHES ?? 200);
const BATCH_SIZE = 20;

export async function run(): Promise<string[]> {
  const origin = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(
      '<!doctype html><html><body><main><div id="promo-banner"></div><section id="hero"><h1>Hi</h1></section></main></body></html>',
    );
  });
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  const { mf, url } = await startNorthstar(`http://127.0.0.1:${(origin.address() as AddressInfo).port}`);
  const lines: string[] = [];
  try {
    let n = 0;
    const post = (userId: string) =>
      fetch(`${url}/_ns/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${SERVER_KEY}` },
        body: JSON.stringify({
          userId,
          events: Array.from({ length: BATCH_SIZE }, () => ({
            id: `b${++n}`,
            type: "product_view",
            props: { category: "running" },
          })),
        }),
      }).then(async (r) => {
        await r.arrayBuffer();
        return r.status;
      });
    // Warm both paths, then measure one visitor (serialised by its object) and 100 visitors, 8 in flight.
    await post("warm");
    const measure = async (pick: (i: number) => string, batches = BATCHES) => {
      const t0 = performance.now();
      let next = 0;
      let limited = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < batches) {
            const i = next++;
            if ((await post(pick(i))) === 429) limited++;
          }
        }),
      );
      return { perSecond: ((batches - limited) * BATCH_SIZE) / ((performance.now() - t0) / 1000), limited };
    };
    const many = await measure((i) => `user-${i % 100}`);
    // One visitor: its rate cap (burst 200, then 20/s) is the point; measure within one burst.
    const single = `single-${Date.now()}`;
    const oneRuns: number[] = [];
    for (let r = 0; r < 5; r++) oneRuns.push((await measure(() => `${single}-${r}`, 10)).perSecond);
    const capped = await measure(() => `${single}-capped`, 40);
    lines.push(
      `events into one visitor's object: ${median(oneRuns).toFixed(0)} events/s within its 200-event burst (median of 5); past the burst, ${capped.limited}/40 batches answered 429 by the per-visitor cap`,
    );
    lines.push(
      `events across 100 visitors: ${many.perSecond.toFixed(0)} events/s, ${BATCH_SIZE}-event batches, 8 in flight`,
    );

    const first = await fetch(`${url}/`, { headers: { "user-agent": "Mozilla/5.0 Chrome/150" } });
    await first.arrayBuffer();
    const cookie = first.headers
      .getSetCookie()
      .find((c) => c.includes("ns_vid"))!
      .split(";")[0]!;
    const timed = async (headers: Record<string, string>) => {
      const t0 = performance.now();
      const r = await fetch(`${url}/`, { headers });
      await r.arrayBuffer();
      const timing = r.headers.get("server-timing") ?? "";
      return {
        total: performance.now() - t0,
        doMs: Number(/ns-do;dur=([\d.]+)/.exec(timing)?.[1] ?? Number.NaN),
      };
    };
    const returning: number[] = [];
    const doCalls: number[] = [];
    const crawler: number[] = [];
    for (let i = 0; i < 300; i++) {
      const r = await timed({ "user-agent": "Mozilla/5.0 Chrome/150", cookie });
      returning.push(r.total);
      if (!Number.isNaN(r.doMs)) doCalls.push(r.doMs);
      crawler.push((await timed({ "user-agent": "Googlebot/2.1" })).total);
    }
    lines.push(
      `decision-path Durable Object call (snapshot + page view), Server-Timing inside the worker: p50 ${median(doCalls).toFixed(2)} ms, p99 ${percentile(doCalls, 0.99).toFixed(2)} ms`,
    );
    lines.push(
      `page with the DO call vs without (crawler), end to end: p50 ${median(returning).toFixed(2)} vs ${median(crawler).toFixed(2)} ms`,
    );
    return lines;
  } finally {
    await mf.dispose();
    origin.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
