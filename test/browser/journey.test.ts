import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser } from "./browser.ts";
import { type DevServer, startDevServer } from "./harness.ts";

// A shopper's journey through the demo shop in real Chromium, against `wrangler dev` as `npm start`
// runs it: the beacon really sends events from the page, and the home page changes with them.
let server: DevServer;
let browser: Browser;

beforeAll(async () => {
  server = await startDevServer();
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

// Headless Chromium announces itself as "HeadlessChrome", which Northstar rightly treats as a bot;
// a shopper's browser sends an ordinary Chrome user agent.
const SHOPPER = {
  userAgent:
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0 Safari/537.36",
};

async function heroText(page: Page): Promise<string> {
  return (await page.locator("#hero").textContent())?.trim() ?? "";
}

describe("demo shop journey", () => {
  it("browsing running gear turns the home hero to running, with events sent by the page's beacon", async () => {
    const context = await browser.newContext(SHOPPER);
    const page = await context.newPage();

    await page.goto(`${server.url}/`);
    const firstHero = await heroText(page);
    expect(await page.locator('script[src*="/_ns/ns."]').count()).toBe(1);
    const cookies = await context.cookies();
    expect(cookies.some((c) => c.name.includes("ns_vid") && c.httpOnly)).toBe(true);

    await page.goto(`${server.url}/running`);
    await page.locator("a[href^='/running/']").first().click();
    await page.waitForLoadState("load");
    await page.locator("[data-ns-event='add_to_cart']").first().click();
    await page.goto(`${server.url}/running/road-racer`);
    // The beacon flushes on a short timer and on page hide; navigating away sends what is queued.
    await page.goto(`${server.url}/cart`);
    // What the page's beacon sent is in the visitor's profile (admin export), add_to_cart included.
    const visitorCookie = (await context.cookies()).find((c) => c.name.includes("ns_vid"))!;
    const visitorId = visitorCookie.value.split(".")[0];
    const exported = async () => {
      const res = await fetch(`${server.url}/_ns/v1/profiles/${visitorId}`, {
        headers: { authorization: "Bearer dev-admin-token" },
      });
      const body = (await res.json()) as { state?: { events: Array<{ type: string }> } };
      return (body.state?.events ?? []).map((e) => e.type);
    };
    await expect
      .poll(exported, { timeout: 10_000 })
      .toEqual(expect.arrayContaining(["page_view", "product_view", "add_to_cart"]));

    await page.goto(`${server.url}/`);
    const hero = await heroText(page);
    expect(hero.toLowerCase()).toContain("run");
    expect(hero).not.toBe(firstHero);
    await page.screenshot({ path: "test/browser/screenshots/home-after-running.png" });
    await context.close();
  }, 60_000);

  it("a visitor with no history sees the default hero or an A/B variant, never an error", async () => {
    const context = await browser.newContext(SHOPPER);
    const page = await context.newPage();
    const response = await page.goto(`${server.url}/`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()["cache-control"]).toContain("private");
    expect(await page.locator("#hero h1").count()).toBe(1);
    await context.close();
  }, 30_000);
});
