import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, describe, expect, it } from "vitest";
import bundledDocument from "../../rules/northstar.rules.json";
import { handle } from "../../src/http/app.ts";
import { parseRules, publishRules } from "../../src/rules/index.ts";
import { resetRulesCache } from "../../src/state/rules-loader.ts";
import { ADMIN, BROWSER_UA, eid, rulesKv, unpublishRules, visitorCookie } from "./helpers.ts";

async function page(cookie?: string) {
  const headers: Record<string, string> = { "user-agent": BROWSER_UA };
  if (cookie) headers.cookie = cookie;
  const ctx = createExecutionContext();
  const res = await handle(new Request("https://shop.test/", { headers }), env, ctx);
  await res.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return res;
}

type Report = { report: { arms: Array<{ id: string; exposures: number; conversions: number }> } };
async function programReport(): Promise<Map<string, { exposures: number; conversions: number }>> {
  const ctx = createExecutionContext();
  const res = await handle(
    new Request("https://shop.test/_ns/v1/experiments/global-holdout", { headers: ADMIN }),
    env,
    ctx,
  );
  expect(res.status).toBe(200);
  const body = (await res.json()) as Report;
  return new Map(body.report.arms.map((a) => [a.id, a]));
}

afterAll(unpublishRules);

describe("a published global holdout", () => {
  it("splits new visitors into held-out and personalized, and measures the program's conversions per group", async () => {
    const doc = {
      ...bundledDocument,
      version: "global-holdout-1",
      settings: {
        ...bundledDocument.settings,
        globalHoldout: { fraction: 0.5, seed: "program", goal: "purchase" },
      },
    };
    const parsed = parseRules(doc);
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const now = new Date().toISOString();
    const published = await publishRules(rulesKv, parsed.rules, { generatedAt: now }, now);
    expect(published.ok).toBe(true);
    resetRulesCache();

    const cookies: string[] = [];
    for (let i = 0; i < 12; i++) cookies.push(visitorCookie(await page()));
    // A first page counts nobody (it touches no visitor object); the next, with the cookie, does.
    const counted = (report: Map<string, { exposures: number }>) =>
      [...report.values()].reduce((sum, arm) => sum + arm.exposures, 0);
    expect(counted(await programReport())).toBe(0);
    for (const cookie of cookies) await page(cookie);
    const after = await programReport();
    const held = after.get("holdout")!;
    const personalized = after.get("personalized")!;
    // Every visitor who came back is counted once, in one of the two groups.
    expect(held.exposures + personalized.exposures).toBe(12);

    // One of them buys: a conversion for the group that visitor is in.
    const before = held.conversions + personalized.conversions;
    const ctx = createExecutionContext();
    const bought = await handle(
      new Request("https://shop.test/_ns/v1/events", {
        method: "POST",
        headers: { "user-agent": BROWSER_UA, cookie: cookies[0]!, "content-type": "text/plain" },
        body: JSON.stringify({
          events: [{ id: eid(), type: "purchase", props: { value: 120, currency: "EUR" } }],
        }),
      }),
      env,
      ctx,
    );
    expect(bought.status).toBe(202);
    await waitOnExecutionContext(ctx); // the conversion is recorded in the background
    const final = await programReport();
    expect(final.get("holdout")!.conversions + final.get("personalized")!.conversions).toBe(before + 1);
  });
});
