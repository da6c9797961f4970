import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { layerBucket } from "../../src/core/layers.ts";
import { handle } from "../../src/http/app.ts";
import { ADMIN, BROWSER_UA, eid, idOf, SERVER, visitorCookie } from "./helpers.ts";

/**
 * The demo's layer newsletter-landing (rules/northstar.rules.json): a newsletter reader is in the
 * banner test (newsletter-banner-copy, the layer's first half) or in the category-note test
 * (newsletter-note, the second half), on the page and in the app alike, and counted in that one only.
 */
const BANNER_TEST = "newsletter-banner-copy";
const NOTE_TEST = "newsletter-note";

/** One request through the worker, returned once the work it left behind (exposures) has finished. */
async function settled(request: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await handle(request, env, ctx);
  const body = await res.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return new Response(body, res);
}

/** A new visitor landing on /running from the newsletter link. */
async function landFromNewsletter(): Promise<{ cookie: string; html: string }> {
  const res = await settled(
    new Request("https://shop.test/running?utm_medium=email", { headers: { "user-agent": BROWSER_UA } }),
  );
  return { cookie: visitorCookie(res), html: await res.text() };
}

type Decided = { experience: string | null; variant: string | null; content: { html: string | null } };

/** The same person later in the app, after clicking the newsletter: what the decision API answers. */
async function inTheApp(visitorId: string): Promise<Record<string, Decided>> {
  const res = await settled(
    new Request("https://shop.test/_ns/v1/decide", {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/json" },
      body: JSON.stringify({
        visitorId,
        channel: "app",
        placements: ["promo-banner", "category-hero"],
        events: [{ id: eid(), type: "email_click", channel: "email" }],
      }),
    }),
  );
  expect(res.status).toBe(200);
  return ((await res.json()) as { decisions: Record<string, Decided> }).decisions;
}

/** Visitors counted in an experiment (every arm and its holdout), as GET /v1/experiments/:id reports them. */
async function counted(experiment: string): Promise<number> {
  const res = await settled(
    new Request(`https://shop.test/_ns/v1/experiments/${experiment}`, { headers: ADMIN }),
  );
  expect(res.status).toBe(200);
  const body = (await res.json()) as {
    holdout: { exposures: number } | null;
    report: { arms: Array<{ exposures: number }> };
  };
  return body.report.arms.reduce((sum, arm) => sum + arm.exposures, 0) + (body.holdout?.exposures ?? 0);
}

describe("an experiment layer across the page and the decision API", () => {
  it("puts a newsletter reader in one test of the layer on the page and in the app, and counts them in that one only", async () => {
    // New visitors' ids are random: land readers until the layer has given one to each test (the
    // chance that 40 all land in the same half is 2⁻³⁹).
    const seen = { [BANNER_TEST]: 0, [NOTE_TEST]: 0 };
    for (let i = 0; i < 40 && (seen[BANNER_TEST] === 0 || seen[NOTE_TEST] === 0); i++) {
      const before = { [BANNER_TEST]: await counted(BANNER_TEST), [NOTE_TEST]: await counted(NOTE_TEST) };
      const { cookie, html } = await landFromNewsletter();
      const visitorId = idOf(cookie);
      // The layer's split as docs/bucketing.md specifies it: the first 5,000 buckets are the banner test's.
      const test = layerBucket("newsletter-landing-2026-12", visitorId) < 5000 ? BANNER_TEST : NOTE_TEST;
      const other = test === BANNER_TEST ? NOTE_TEST : BANNER_TEST;
      seen[test]++;

      const app = await inTheApp(visitorId);
      if (test === BANNER_TEST) {
        expect(app["promo-banner"]!.experience).toBe("newsletter-welcome");
        expect(app["category-hero"]!.experience).toBeNull();
        expect(html).toContain(app["promo-banner"]!.content.html);
        expect(html).not.toContain('class="note"');
      } else {
        expect(app["category-hero"]!.experience).toBe("newsletter-category-note");
        expect(app["promo-banner"]!.experience).toBe("first-visit-offer");
        expect(html).toContain(app["category-hero"]!.content.html);
        expect(html).not.toContain("banner-news");
      }
      expect(await counted(test)).toBe(before[test] + 1);
      expect(await counted(other)).toBe(before[other]);
    }
    expect(seen[BANNER_TEST]).toBeGreaterThan(0);
    expect(seen[NOTE_TEST]).toBeGreaterThan(0);
  });
});
