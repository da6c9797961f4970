import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runTraffic } from "../../scripts/demo-traffic.ts";
import { launchBrowser } from "./browser.ts";
import { type DevServer, startDevServer } from "./harness.ts";

// The console in real Chromium, against `wrangler dev` as `npm start` runs it, with two rules versions
// published into its local KV (and RULES_SOURCE=kv, so the worker serves published versions).
const ROOT = new URL("../..", import.meta.url).pathname;
const ADMIN = { authorization: "Bearer dev-admin-token" };
const SHOPPER = {
  userAgent:
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0 Safari/537.36",
};
const FIRST = "2026.11.29-1";
const SECOND = "2026.11.29-2";
const SHOTS = "test/browser/screenshots";

let server: DevServer;
let browser: Browser;
let admin: BrowserContext;
let consolePage: Page;
/** Every console message of level error and every uncaught exception on the console's pages. */
const problems: string[] = [];

/** Publishes the rules file under `version`, as `npm run rules -- publish --local` into `state`. */
function publish(state: string, version: string, description: string): void {
  const doc = JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8"));
  doc.version = version;
  doc.experiments["hero-test"].description = description;
  const file = join(state, `${version}.json`);
  writeFileSync(file, JSON.stringify(doc, null, 2));
  execFileSync("node", ["scripts/rules.ts", "publish", file, "--local", "--persist-to", state], {
    cwd: ROOT,
    stdio: "pipe",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
  });
}

beforeAll(async () => {
  const state = mkdtempSync(join(tmpdir(), "northstar-console-"));
  publish(state, FIRST, "Home hero copy for visitors with no stronger intent");
  publish(state, SECOND, "Home hero copy, second wording of the test's description");
  server = await startDevServer({ RULES_SOURCE: "kv" }, { state });
  browser = await launchBrowser();
  admin = await browser.newContext();
  consolePage = await admin.newPage();
  consolePage.on("console", (m) => {
    if (m.type() === "error") problems.push(`${consolePage.url()}: ${m.text()}`);
  });
  consolePage.on("pageerror", (e) => problems.push(`${consolePage.url()}: ${e.message}`));
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("the console", () => {
  it("signs in with the admin token and shows the seeded experiment's raw counts in its chart", async () => {
    const lines = await runTraffic({
      url: server.url,
      visitors: 40,
      seed: 1,
      concurrency: 4,
      adminToken: "dev-admin-token",
      serverKey: "dev-server-api-key",
    });
    expect(lines.join("\n")).not.toMatch(/failed/);

    await consolePage.goto(`${server.url}/_ns/console/experiments`);
    expect(new URL(consolePage.url()).pathname).toBe("/_ns/console/sign-in");
    await consolePage.fill("input[name=token]", "dev-admin-token");
    await consolePage.click("button[type=submit]");
    expect(new URL(consolePage.url()).pathname).toBe("/_ns/console/experiments");
    await consolePage.click("a[href$='/experiments/hero-test']");

    // Per goal, every arm (the variants and the holdout) as GET /v1/experiments/hero-test counts it.
    const api = async () => {
      const res = await fetch(`${server.url}/_ns/v1/experiments/hero-test`, { headers: ADMIN });
      const body = (await res.json()) as {
        goals: Array<{
          id: string;
          report: { arms: Array<{ id: string; visitors: number; conversions: number }> };
        }>;
      };
      return body.goals.map((g) => ({
        goal: g.id,
        arms: g.report.arms.map(({ id, visitors, conversions }) => ({ id, visitors, conversions })),
      }));
    };
    const charts = async () =>
      consolePage.locator("section.goal").evaluateAll((sections) =>
        sections.map((s) => ({
          goal: s.getAttribute("data-goal"),
          arms: Array.from(s.querySelectorAll("svg.rates g.arm"), (g) => ({
            id: g.getAttribute("data-arm"),
            visitors: Number(g.querySelector(".exposures")?.textContent),
            conversions: Number(g.querySelector(".conversions")?.textContent),
          })),
        })),
      );
    const raw = await api();
    await consolePage.reload();
    expect(await charts()).toEqual(raw);
    expect(raw[0]!.arms.reduce((n, a) => n + a.visitors, 0)).toBeGreaterThan(20);
    await consolePage.screenshot({ path: `${SHOTS}/console-experiment.png`, fullPage: true });
    expect(problems).toEqual([]);
  }, 300_000);

  it("a person's explanation names what the page showed them, with a preview of it", async () => {
    // The hero test holds 10% of visitors out and explains no hero for them: take a shopper it shows one.
    const heldOut = async (id: string) => {
      const url = encodeURIComponent(`${server.url}/`);
      const res = await fetch(`${server.url}/_ns/v1/explain?visitorId=${id}&url=${url}`, { headers: ADMIN });
      const body = (await res.json()) as { decisions: Record<string, { variant: string | null }> };
      return !body.decisions["home-hero"]?.variant;
    };
    let shopper = await browser.newContext(SHOPPER);
    let shop = await shopper.newPage();
    // The first page sets the cookie and records nothing (docs/decisions.md, record 12); the
    // visitor's next page, with it, is the one the worker keeps and explains.
    await shop.goto(`${server.url}/`);
    let visitorId = (await shopper.cookies()).find((c) => c.name.includes("ns_vid"))!.value.split(".")[0]!;
    while (await heldOut(visitorId)) {
      await shopper.close();
      shopper = await browser.newContext(SHOPPER);
      shop = await shopper.newPage();
      await shop.goto(`${server.url}/`);
      visitorId = (await shopper.cookies()).find((c) => c.name.includes("ns_vid"))!.value.split(".")[0]!;
    }
    await shop.goto(`${server.url}/`);
    const shown = (await shop.locator("#hero h1").textContent())?.trim() ?? "";

    await consolePage.goto(`${server.url}/_ns/console/person`);
    await consolePage.fill("input[name=id]", visitorId);
    await consolePage.fill("input[name=url]", `${server.url}/`);
    await consolePage.click("form.lookup button[type=submit]");
    const hero = consolePage.locator("#explanation tr[data-placement='home-hero'] q.content");
    expect(shown).not.toBe("");
    expect(await hero.textContent()).toContain(shown);
    await consolePage.screenshot({ path: `${SHOTS}/console-person.png`, fullPage: true });

    const preview = await consolePage.locator("#preview-link").getAttribute("href");
    await shop.goto(preview!);
    expect((await shop.locator("#hero h1").textContent())?.trim()).toBe(shown);
    await shopper.close();
    expect(problems).toEqual([]);
  }, 60_000);

  it("a shopper who adds to the cart is shown in the cart reminder journey on their page", async () => {
    const shopper = await browser.newContext(SHOPPER);
    const shop = await shopper.newPage();
    await shop.goto(`${server.url}/`);
    const visitorId = (await shopper.cookies()).find((c) => c.name.includes("ns_vid"))!.value.split(".")[0]!;
    const sent = await shopper.request.post(`${server.url}/_ns/v1/events`, {
      headers: { "content-type": "text/plain;charset=UTF-8" },
      data: JSON.stringify({
        sentAt: Date.now(),
        events: [{ id: `cart-${visitorId}`, type: "add_to_cart", props: { category: "running" } }],
      }),
    });
    expect(sent.status()).toBe(202);

    await consolePage.goto(`${server.url}/_ns/console/person?id=${visitorId}`);
    const journey = consolePage.locator("section.journey[data-journey='cart-abandonment']");
    expect(await journey.count()).toBe(1);
    expect(["(starting)", "wait-for-purchase", "remind"]).toContain(
      await journey.locator(".step").textContent(),
    );
    await consolePage.screenshot({ path: `${SHOTS}/console-person-journey.png`, fullPage: true });
    await shopper.close();
    expect(problems).toEqual([]);
  }, 60_000);

  it("diffs two rules versions and rolls back behind a confirmation", async () => {
    await consolePage.goto(`${server.url}/_ns/console/rules`);
    expect(await consolePage.locator("#active").textContent()).toBe(SECOND);
    await consolePage.selectOption("select[name=from]", FIRST);
    await consolePage.selectOption("select[name=to]", SECOND);
    await consolePage.click("form[action$='/rules/diff'] button");
    const diff = (await consolePage.locator("#diff").textContent()) ?? "";
    expect(diff).toContain(`-   "version": "${FIRST}",`);
    expect(diff).toContain(`+   "version": "${SECOND}",`);
    expect(diff).toContain(
      '+       "description": "Home hero copy, second wording of the test\'s description",',
    );
    await consolePage.screenshot({ path: `${SHOTS}/console-rules-diff.png`, fullPage: true });

    await consolePage.goto(`${server.url}/_ns/console/rules`);
    await consolePage.click(`tr[data-version='${FIRST}'] a`);
    expect(await consolePage.locator("#active").count()).toBe(0); // the confirmation, not yet done
    await consolePage.click("#confirm-rollback");
    expect(await consolePage.locator("#notice").textContent()).toBe(`Rolled back to ${FIRST}.`);
    expect(await consolePage.locator("#active").textContent()).toBe(FIRST);
    await consolePage.screenshot({ path: `${SHOTS}/console-rules-rolled-back.png`, fullPage: true });
    expect(problems).toEqual([]);
  }, 60_000);

  it("signing out closes the console: a direct URL goes to sign-in", async () => {
    await consolePage.goto(`${server.url}/_ns/console/programme`);
    await consolePage.screenshot({ path: `${SHOTS}/console-programme.png`, fullPage: true });
    await consolePage.click("form.sign-out button");
    expect(new URL(consolePage.url()).pathname).toBe("/_ns/console/sign-in");
    expect(await consolePage.locator("#notice").textContent()).toBe("You are signed out.");
    await consolePage.goto(`${server.url}/_ns/console/experiments/hero-test`);
    expect(new URL(consolePage.url()).pathname).toBe("/_ns/console/sign-in");
    await consolePage.screenshot({ path: `${SHOTS}/console-signed-out.png`, fullPage: true });
    expect(problems).toEqual([]);
  }, 60_000);
});
