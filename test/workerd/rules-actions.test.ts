import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { handle } from "../../src/http/app.ts";
import { ACTIVE_KEY, versionKey } from "../../src/rules/store.ts";
import { resetRulesCache } from "../../src/state/rules-loader.ts";
import { ADMIN, BROWSER_UA, publishDoc, visit } from "./helpers.ts";

// Rules published to the real RULES KV namespace, as `npm run rules -- publish` writes them.

function actionsDoc(version: string, extra: Record<string, unknown> = {}) {
  const slot = (selector: string, action: string, more: Record<string, unknown> = {}) => ({
    selector,
    action,
    pages: ["/"],
    ...more,
  });
  const everyone = (id: string, placement: string, content: Record<string, string>) => ({
    id,
    placement,
    content,
  });
  return {
    version,
    placements: {
      content: slot("#hero h1", "replace_content"),
      element: slot("#hero p", "replace_element"),
      before: slot("#hero", "before"),
      after: slot("#hero", "after"),
      prepend: slot("#promo-banner", "prepend"),
      append: slot("#promo-banner", "append"),
      remove: slot("#recommendations", "remove"),
      attr: slot("#hero", "set_attribute", { attribute: "data-variant" }),
      missing: slot("#does-not-exist", "replace_content"),
    },
    experiences: [
      everyone("c", "content", { html: "<em>New title</em>" }),
      everyone("e", "element", { html: "<p class=replaced>Replaced paragraph</p>" }),
      everyone("b", "before", { html: "<div id=before-hero></div>" }),
      everyone("a", "after", { html: "<div id=after-hero></div>" }),
      everyone("p", "prepend", { html: "<span id=first></span>" }),
      everyone("ap", "append", { html: "<span id=last></span>" }),
      everyone("r", "remove", { html: "" }),
      { id: "at", placement: "attr", content: { attribute: 'personal <"x">' } },
      everyone("m", "missing", { html: "never shown" }),
    ],
    ...extra,
  };
}

afterEach(async () => {
  vi.useRealTimers();
  await env.RULES.delete(ACTIVE_KEY);
  resetRulesCache();
});

describe("every placement action, applied as the page streams", () => {
  it("replace content and element, before/after, prepend/append, remove, set attribute; a missing selector is harmless", async () => {
    await publishDoc(actionsDoc("actions-1"));
    const res = await visit("/");
    const html = await res.text();
    expect(res.headers.get("x-northstar-rules")).toBe("actions-1");
    expect(html).toContain("<h1><em>New title</em></h1>");
    expect(html).toContain("<p class=replaced>Replaced paragraph</p>");
    expect(html).not.toContain("For everyone");
    expect(html).toMatch(/<div id=before-hero><\/div><section id="hero"/);
    expect(html).toMatch(/<\/section><div id=after-hero><\/div>/);
    expect(html).toContain('<div id="promo-banner"><span id=first></span><span id=last></span></div>');
    expect(html).not.toContain("recommendations");
    // HTMLRewriter quotes the value: a double quote cannot end the attribute.
    expect(html).toContain('<section id="hero" data-variant="personal <&quot;x&quot;>"');
    expect(html).not.toContain("never shown");
    expect(html.trimEnd().endsWith("</html>")).toBe(true);
  });

  it("a redirect decision sends the browser elsewhere without waiting for the page", async () => {
    await publishDoc({
      version: "redirect-1",
      placements: { go: { selector: "body", action: "redirect", pages: ["/"] } },
      experiences: [{ id: "to-running", placement: "go", content: { redirect: "/running" } }],
    });
    const res = await visit("/");
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("/running");
    expect(res.headers.get("cache-control")).toBe("private, no-store");
  });
});

describe("rules life cycle", () => {
  it("publish → served without redeploy; a broken version keeps the last known good; rollback moves the pointer", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    await publishDoc(actionsDoc("v-good"));
    expect((await visit("/")).headers.get("x-northstar-rules")).toBe("v-good");
    const status = await (await visit("/_ns/v1/rules", { headers: ADMIN })).json();
    expect(status).toMatchObject({ version: "v-good", source: "kv", lastError: null });

    // A pointer to a version whose document is invalid: the worker keeps serving v-good.
    await env.RULES.put(
      versionKey("v-bad"),
      JSON.stringify({ hash: "0", doc: { version: "v-bad", placements: 42 } }),
    );
    await env.RULES.put(ACTIVE_KEY, JSON.stringify({ version: "v-bad", hash: "0" }));
    // The warm isolate re-checks KV only every few seconds: the clock makes that check due, and one
    // page runs the background refresh it starts to the end.
    vi.setSystemTime(Date.now() + 60_000);
    const ctx = createExecutionContext();
    const refreshing = await handle(
      new Request("https://shop.test/", { headers: { "user-agent": BROWSER_UA } }),
      env,
      ctx,
    );
    await refreshing.arrayBuffer();
    await waitOnExecutionContext(ctx);
    const after = await visit("/");
    expect(after.headers.get("x-northstar-rules")).toBe("v-good");
    const broken = (await (await visit("/_ns/v1/rules", { headers: ADMIN })).json()) as { lastError: string };
    expect(broken.lastError).toContain("v-bad");

    // Rollback = the pointer moved back; a fresh isolate (reset) loads it at once.
    const good = JSON.parse((await env.RULES.get(versionKey("v-good")))!) as { hash: string };
    await env.RULES.put(ACTIVE_KEY, JSON.stringify({ version: "v-good", hash: good.hash }));
    resetRulesCache();
    expect((await visit("/")).headers.get("x-northstar-rules")).toBe("v-good");
  });

  it("with nothing in KV the rules bundled at build time serve", async () => {
    await env.RULES.delete(ACTIVE_KEY);
    resetRulesCache();
    expect((await visit("/")).headers.get("x-northstar-rules")).toBe("2026.11.24-1");
  });

  it("a page with no placement and auto-injection off takes the pure pass-through path", async () => {
    await publishDoc({
      version: "quiet-1",
      placements: { hero: { selector: "#hero", pages: ["/running"] } },
    });
    const quiet = { ...env, BEACON_AUTO_INJECT: "false" };
    const res = await handle(
      new Request("https://shop.test/", { headers: { "user-agent": BROWSER_UA } }),
      quiet,
      createExecutionContext(),
    );
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    expect(res.headers.get("etag")).toBe('"home-1"');
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(await res.text()).toContain("Default hero");
  });
});

describe("fail open", () => {
  const faultyNamespace = (fault: "throw" | "hang") =>
    ({
      idFromName: (name: string) => env.VISITOR.idFromName(name),
      get: () => ({
        snapshot: () =>
          fault === "throw" ? Promise.reject(new Error("DO exploded")) : new Promise(() => {}),
        recordDecision: () => Promise.resolve(),
        ingest: () => Promise.resolve({ status: "stored", accepted: 0, duplicates: 0, conversions: [] }),
      }),
    }) as unknown as typeof env.VISITOR;

  /**
   * A returning visitor's page under injected faults, read to the end. `failedOpen` is what the
   * operator learns: the response header when the decision came before the page's first byte, the
   * structured log line in every case (the only report when the page streamed first).
   */
  async function returning(faults: Record<string, unknown>, path = "/") {
    const first = await visit(path);
    await first.arrayBuffer();
    const cookie = first.headers
      .getSetCookie()
      .find((c) => c.includes("ns_vid"))!
      .split(";")[0]!;
    const logged: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      logged.push(String(line));
    });
    try {
      const ctx = createExecutionContext();
      const res = await handle(
        new Request(`https://shop.test${path}`, { headers: { "user-agent": BROWSER_UA, cookie } }),
        { ...env, ...faults },
        ctx,
      );
      const body = await res.text();
      await waitOnExecutionContext(ctx);
      const header = res.headers.get("x-northstar-fail-open");
      const line = logged
        .map((l) => JSON.parse(l) as { msg?: string; reasons?: string[] })
        .find((l) => l.msg === "failed_open");
      return { res, body, header, failedOpen: line?.reasons ?? [] };
    } finally {
      spy.mockRestore();
    }
  }

  it("a Durable Object that throws: the page, with defaults, and the failure reported", async () => {
    const { res, body, header, failedOpen } = await returning({ VISITOR: faultyNamespace("throw") });
    expect(res.status).toBe(200);
    expect(failedOpen).toContain("do-error");
    expect(["deferred", "do-error"]).toContain(header);
    // What a new visitor would see: the origin's hero or the A/B test's, never an error.
    expect(body).toMatch(/Default hero|Gear for every trail|Go further this weekend/);
  });

  it("a Durable Object that hangs: the page streams at once and its slots fill after the deadline", async () => {
    const { res, body, header, failedOpen } = await returning({
      VISITOR: faultyNamespace("hang"),
      STORE_DEADLINE_MS: "30",
    });
    expect(res.status).toBe(200);
    // The origin answered long before the 30 ms deadline: the page did not wait for the object.
    expect(header).toBe("deferred");
    expect(failedOpen).toContain("do-timeout");
    expect(body).toMatch(/Default hero|Gear for every trail|Go further this weekend/);
    expect(body.trimEnd().endsWith("</html>")).toBe(true);
  });

  it("KV down: traits are skipped, the page is served", async () => {
    const brokenKv = {
      get: () => Promise.reject(new Error("KV unavailable")),
      put: () => Promise.reject(new Error("KV unavailable")),
    };
    const { res, body, failedOpen } = await returning({ PROFILES: brokenKv });
    expect(res.status).toBe(200);
    expect(failedOpen).toContain("kv-error");
    expect(body.trimEnd().endsWith("</html>")).toBe(true);
  });

  it("rules KV down on a cold isolate: the bundled rules serve", async () => {
    resetRulesCache();
    const brokenKv = { get: () => Promise.reject(new Error("KV unavailable")) } as unknown as KVNamespace;
    const ctx = createExecutionContext();
    const res = await handle(
      new Request("https://shop.test/", { headers: { "user-agent": BROWSER_UA } }),
      { ...env, RULES: brokenKv },
      ctx,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("x-northstar-rules")).toBe("2026.11.24-1");
    expect(await res.text()).toContain("First time here?");
  });
});
