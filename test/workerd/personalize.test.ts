import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BEACON_VERSION } from "../../src/edge/beacon.ts";
import { handle } from "../../src/http/app.ts";
import {
  ADMIN,
  BROWSER_UA,
  eid,
  newVisitor,
  sendEvents,
  visit,
  visitorCookie,
  visitorsWithSnapshot,
} from "./helpers.ts";

// The personalizing proxy against the test origin, with the demo rules bundled at build time.
describe("a proxied page", () => {
  it("first visit: a signed HttpOnly cookie, the first-visit offer, the beacon once, never shared-cached", async () => {
    const res = await visit("/");
    expect(res.status).toBe(200);
    const cookie = res.headers.getSetCookie().find((c) => c.includes("ns_vid="))!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).toMatch(/Path=\//);
    const maxAge = Number(/Max-Age=(\d+)/.exec(cookie)?.[1]);
    expect(maxAge).toBeGreaterThan(0);
    expect(maxAge).toBeLessThanOrEqual(400 * 86400);
    expect(res.headers.get("cache-control")).toBe("private, no-store");
    expect(res.headers.get("x-northstar-rules")).toBe("2026.11.24-1");
    const html = await res.text();
    expect(html).toContain("First time here?");
    expect(html.split(`<script src="/_ns/ns.${BEACON_VERSION}.js"`)).toHaveLength(2);
    expect(html.indexOf(`ns.${BEACON_VERSION}.js`)).toBeLessThan(html.indexOf("</body>"));
  });

  it("a browsing history turns the hero to running, and the cookie cannot be forged", async () => {
    const cookie = await newVisitor();
    const sent = await sendEvents(cookie, [
      { id: eid(), type: "product_view", props: { category: "running", path: "/running/trail-runner-2" } },
      { id: eid(), type: "product_view", props: { category: "running", path: "/running/road-racer" } },
    ]);
    expect(sent.status).toBe(202);
    const html = await (await visit("/", { cookie })).text();
    expect(html).toContain("Ready for your next run, runner?");
    // A cookie with a wrong signature is a new visitor: default content and a fresh cookie.
    const forged = cookie.replace(/\.[^.]+$/, ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    const res = await visit("/", { cookie: forged });
    expect(await res.text()).not.toContain("Ready for your next run");
    expect(visitorCookie(res)).not.toBe(cookie);
  });

  it("the page starts before the visitor's object answers; its slots fill in when it does", async () => {
    const cookie = await newVisitor();
    await sendEvents(cookie, [
      { id: eid(), type: "product_view", props: { category: "running", path: "/running/road-racer" } },
      { id: eid(), type: "product_view", props: { category: "running", path: "/running/tempo-tee" } },
    ]);
    // The visitor's real object, held back until the test lets it answer.
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const held = visitorsWithSnapshot((snapshot) => gate.then(snapshot));
    const ctx = createExecutionContext();
    const res = await handle(
      new Request("https://shop.test/", {
        headers: { "user-agent": BROWSER_UA, cookie, "accept-encoding": "identity" },
      }),
      { ...env, VISITOR: held, STORE_DEADLINE_MS: "5000" },
      ctx,
    );
    // Status, headers and the page's first bytes, all while the object has not answered.
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("private, no-store");
    expect(res.headers.get("x-northstar-fail-open")).toBe("deferred");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const first = decoder.decode((await reader.read()).value);
    expect(first).toContain("<head>");
    expect(first).not.toContain("Ready for your next run");
    release();
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += decoder.decode(r.value);
    await waitOnExecutionContext(ctx);
    expect(first + rest).toContain("Ready for your next run, runner?");
    expect((first + rest).split(`<script src="/_ns/ns.${BEACON_VERSION}.js"`)).toHaveLength(2);
  });

  it("crawlers get what a new anonymous visitor gets, but no cookie and no profile", async () => {
    const res = await visit("/", {
      headers: { "user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)" },
    });
    expect(res.headers.getSetCookie().some((c) => c.includes("ns_vid"))).toBe(false);
    const html = await res.text();
    expect(html).toContain("First time here?");
    expect(html).not.toContain(`ns.${BEACON_VERSION}.js`);
  });

  it("assets and non-GET requests skip personalization entirely", async () => {
    const post = await visit("/echo", { method: "POST", body: "x" });
    expect(post.headers.getSetCookie()).toEqual([]);
    const asset = await visit("/binary");
    expect(asset.headers.getSetCookie()).toEqual([]);
    expect(asset.headers.get("cache-control")).toBe("public, max-age=3600");
  });

  it("preview: an admin-signed link forces an experience for that browser and shows the explain panel", async () => {
    const minted = await visit("/_ns/v1/preview", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ path: "/", forced: { "home-hero": { experience: "hero-hiker" } } }),
    });
    expect(minted.status).toBe(200);
    const { url } = (await minted.json()) as { url: string };
    const res = await visit(new URL(url).pathname + new URL(url).search);
    const html = await res.text();
    expect(html).toContain("The trail is calling");
    expect(html).toContain('id="ns-preview"');
    expect(res.headers.get("cache-control")).toBe("private, no-store");
    expect(res.headers.getSetCookie().some((c) => c.startsWith("ns_preview="))).toBe(true);
    // Without the admin token, no preview link; a tampered token is ignored.
    expect((await visit("/_ns/v1/preview", { method: "POST", body: "{}" })).status).toBe(401);
    const tampered = await (await visit(`/?ns_preview=${encodeURIComponent("x.y")}`)).text();
    expect(tampered).not.toContain("ns-preview");
  });
});
