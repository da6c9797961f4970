import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { handle } from "../../src/http/app.ts";
import type { Env } from "../../src/platform/env.ts";
import { ADMIN, BROWSER_UA, eid, idOf, visitorCookie } from "./helpers.ts";

/**
 * CONSENT_MODE=opt-in, as a site under the GDPR runs Northstar: nothing about a visitor is kept,
 * used or counted until they grant the purpose; the page is still served, from the request alone.
 */
const optIn = { ...env, CONSENT_MODE: "opt-in" } as unknown as Env;

async function call(path: string, init: RequestInit & { cookie?: string } = {}) {
  const headers = new Headers(init.headers);
  headers.set("user-agent", BROWSER_UA);
  if (init.cookie) headers.set("cookie", init.cookie);
  const ctx = createExecutionContext();
  const res = await handle(new Request(`https://shop.test${path}`, { ...init, headers }), optIn, ctx);
  const body = await res.text();
  await waitOnExecutionContext(ctx);
  return { res, body };
}

const runningViews = () => [
  { id: eid(), type: "product_view", props: { category: "running", path: "/running/road-racer" } },
  { id: eid(), type: "product_view", props: { category: "running", path: "/running/tempo-tee" } },
];

async function heroTestExposures(): Promise<number> {
  const { body } = await call("/_ns/v1/experiments/hero-test", { headers: ADMIN });
  const report = (JSON.parse(body) as { report: { arms: Array<{ exposures: number }> } }).report;
  return report.arms.reduce((sum, arm) => sum + arm.exposures, 0);
}

describe("opt-in consent", () => {
  it("sets no cookie, keeps nothing, uses nothing and counts nothing until the visitor grants it; then everything works", async () => {
    const exposuresBefore = await heroTestExposures();
    const first = await call("/");
    expect(first.res.status).toBe(200);
    // Nothing identifying is set before consent: not even the visitor cookie.
    expect(first.res.headers.getSetCookie()).toEqual([]);

    // Behaviour before consent: acknowledged, not stored, and still no cookie.
    const refused = await call("/_ns/v1/events", {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: JSON.stringify({ events: runningViews() }),
    });
    expect(refused.res.status).toBe(202);
    expect(JSON.parse(refused.body)).toMatchObject({ stored: 0, reason: "consent" });
    expect(refused.res.headers.getSetCookie()).toEqual([]);
    // The A/B test was shown (from the request alone) but not counted.
    expect(await heroTestExposures()).toBe(exposuresBefore);

    // The visitor accepts the consent banner: only now does the browser get its cookie.
    const granted = await call("/_ns/v1/consent", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ purposes: { personalization: true, measurement: true } }),
    });
    expect(granted.res.status).toBe(200);
    const cookie = visitorCookie(granted.res);
    const exported = await call(`/_ns/v1/profiles/${idOf(cookie)}`, { headers: ADMIN });
    expect(exported.body).not.toContain("product_view");
    expect(exported.body).not.toContain("page_view");
    expect((await call("/", { cookie })).body).not.toContain("Ready for your next run");
    const stored = await call("/_ns/v1/events", {
      method: "POST",
      cookie,
      headers: { "content-type": "text/plain" },
      body: JSON.stringify({ events: runningViews() }),
    });
    expect(JSON.parse(stored.body)).toMatchObject({ stored: 2 });
    expect((await call("/", { cookie })).body).toContain("Ready for your next run, runner?");
  });

  it("the default mode (opt-out) stores a new visitor's behaviour without a consent call", async () => {
    const ctx = createExecutionContext();
    const first = await handle(
      new Request("https://shop.test/", { headers: { "user-agent": BROWSER_UA } }),
      env,
      ctx,
    );
    await first.arrayBuffer();
    await waitOnExecutionContext(ctx);
    const cookie = visitorCookie(first);
    const res = await handle(
      new Request("https://shop.test/_ns/v1/events", {
        method: "POST",
        headers: { "user-agent": BROWSER_UA, cookie, "content-type": "text/plain" },
        body: JSON.stringify({ events: runningViews() }),
      }),
      env,
      createExecutionContext(),
    );
    expect(await res.json()).toMatchObject({ stored: 2 });
  });
});
