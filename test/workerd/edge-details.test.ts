import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BEACON_VERSION } from "../../src/edge/beacon.ts";
import { handle } from "../../src/http/app.ts";
import { ADMIN, BROWSER_UA, idOf, newVisitor, visit } from "./helpers.ts";

describe("the beacon", () => {
  it("is served at a URL versioned by its content, with a year's cache; other URLs point at it", async () => {
    expect(BEACON_VERSION).toMatch(/^[0-9a-f]{8}$/);
    const res = await visit(`/_ns/ns.${BEACON_VERSION}.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("javascript");
    expect(res.headers.get("cache-control")).toContain("immutable");
    const source = await res.text();
    expect(source).toContain("sendBeacon");
    expect(source.length).toBeLessThan(6 * 1024);
    // The plain URL, and an older version a cached page may still name, lead to the current script.
    for (const path of ["/_ns/ns.js", "/_ns/ns.1.js"]) {
      const moved = await visit(path);
      expect(moved.status).toBe(302);
      expect(moved.headers.get("location")).toBe(`/_ns/ns.${BEACON_VERSION}.js`);
      expect(moved.headers.get("cache-control") ?? "").not.toContain("immutable");
    }
  });
});

describe("cookies in production", () => {
  it("are __Host- prefixed and Secure", async () => {
    const secure = { ...env, COOKIE_SECURE: "true" };
    const res = await handle(
      new Request("https://shop.test/", { headers: { "user-agent": BROWSER_UA } }),
      secure,
      createExecutionContext(),
    );
    const cookie = res.headers.getSetCookie().find((c) => c.includes("ns_vid="))!;
    expect(cookie.startsWith("__Host-ns_vid=")).toBe(true);
    expect(cookie).toContain("Secure");
    expect(cookie).not.toContain("Domain=");
  });
});

describe("traits from the CRM", () => {
  it("a bulk NDJSON import reaches the page, HTML-escaped; bad lines are reported, not fatal", async () => {
    const cookie = await newVisitor();
    await (await visit("/", { cookie })).arrayBuffer(); // a second page view: not a first visit any more
    const id = idOf(cookie);
    const ndjson = [
      JSON.stringify({ id, traits: { firstName: "Zoë <b>" } }),
      "not json",
      JSON.stringify({ id, traits: { lifetimeValue: 1500 } }),
      JSON.stringify({ id: 7, traits: {} }),
    ].join("\n");
    const res = await visit("/_ns/v1/profiles/import", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/x-ndjson" },
      body: ndjson,
    });
    expect(await res.json()).toEqual({
      written: 1,
      errors: [
        { line: 2, message: "not JSON" },
        { line: 4, message: "id must be a string" },
      ],
    });
    const html = await (await visit("/", { cookie })).text();
    expect(html).toContain("Members get free express shipping, Zoë &lt;b&gt;.");
    expect(html).not.toContain("Zoë <b>");
  });
});
