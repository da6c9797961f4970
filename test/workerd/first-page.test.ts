// A new visitor's first page touches no visitor object; what it assigned and showed rides in the
// beacon's tag and is recorded by the beacon's first call (docs/decisions.md, record 12). The
// beacon is played here by the test: it sends back the tag's `data-first` as `firstPage`.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { refusedFirstPageClaims } from "../../src/edge/first-page.ts";
import { handle } from "../../src/http/app.ts";
import { ADMIN, BROWSER_UA, eid, visit, visitorCookie } from "./helpers.ts";

/** A request with everything it left for afterwards (ctx.waitUntil) done. */
async function settled(request: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await handle(request, env, ctx);
  const body = await res.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return new Response(body, res);
}

type Arm = { id: string; exposures: number };

/** The hero test's unique exposures per arm, the holdout's included, as the admin report gives them. */
async function heroExposures(): Promise<Map<string, number>> {
  const res = await visit("/_ns/v1/experiments/hero-test", { headers: ADMIN });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { holdout: { exposures: number } | null; report: { arms: Arm[] } };
  const arms = new Map(body.report.arms.map((arm) => [arm.id, arm.exposures]));
  arms.set("holdout", body.holdout?.exposures ?? 0);
  return arms;
}

/** A first page: its cookie, and the claim its beacon tag carries (HTML-unescaped). */
async function firstPage(): Promise<{
  cookie: string;
  attribute: string;
  claim: { assignments: Record<string, string> };
}> {
  const res = await settled(new Request("https://shop.test/", { headers: { "user-agent": BROWSER_UA } }));
  const html = await res.text();
  const attribute = /data-first="([^"]*)"/.exec(html)?.[1];
  expect(attribute).toBeDefined();
  const json = attribute!
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
  return { cookie: visitorCookie(res), attribute: json, claim: JSON.parse(json) };
}

/** The beacon's first call: the page view, and the first page's claim. */
function beaconFirstCall(cookie: string, firstPage: string): Promise<Response> {
  return settled(
    new Request("https://shop.test/_ns/v1/events", {
      method: "POST",
      headers: { "user-agent": BROWSER_UA, cookie, "content-type": "text/plain;charset=UTF-8" },
      body: JSON.stringify({
        sentAt: Date.now(),
        events: [{ id: eid(), type: "page_view", props: { path: "/", url: "https://shop.test/" } }],
        firstPage,
      }),
    }),
  );
}

describe("a visitor who sees one page", () => {
  it("is counted in the A/B test's arm their page showed once their beacon's first call arrives", async () => {
    const { cookie, attribute, claim } = await firstPage();
    const arm = claim.assignments["hero-test"];
    expect(arm).toBeDefined();
    const before = await heroExposures();
    expect((await beaconFirstCall(cookie, attribute)).status).toBe(202);
    const after = await heroExposures();
    expect(after.get(arm!)! - before.get(arm!)!).toBe(1);
  });

  it("a forged arm or an unknown experiment is not recorded, the refusals are counted, and the page view is stored", async () => {
    const { cookie, claim } = await firstPage();
    const arm = claim.assignments["hero-test"]!;
    const forged = arm === "bold" ? "control" : "bold";
    const refusedBefore = refusedFirstPageClaims();
    const before = await heroExposures();
    const res = await beaconFirstCall(
      cookie,
      JSON.stringify({ assignments: { "hero-test": forged, "no-such-test": "a" }, shown: [] }),
    );
    expect(res.status).toBe(202);
    const after = await heroExposures();
    for (const id of ["control", "bold", "holdout"]) expect(after.get(id)).toBe(before.get(id));
    expect(refusedFirstPageClaims()).toBe(refusedBefore + 2);
    // The page view was stored all the same.
    expect(((await res.json()) as { stored: number }).stored).toBe(1);
  });
});
