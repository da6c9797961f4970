import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { handle } from "../../src/http/app.ts";
import { readConfig } from "../../src/platform/config.ts";
import { ACTIVE_KEY } from "../../src/rules/store.ts";
import { activeRules, resetRulesCache } from "../../src/state/rules-loader.ts";
import { BROWSER_UA, newVisitor, publishDoc } from "./helpers.ts";
import { originAfterDecision } from "./origin-gate.ts";

// What the proxy's response headers let browsers and shared caches (a CDN in front of the worker)
// do with a page, how long it waits for the origin, and where its redirects send the visitor.
// The origin is test/fixtures/origin.js.

/** Headers by which a shared cache may keep a response, in each dialect CDNs read. */
const SHARED_CACHE_HEADERS = [
  "cdn-cache-control",
  "cloudflare-cdn-cache-control",
  "surrogate-control",
  "surrogate-key",
  "cache-tag",
  "expires",
];

const CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

function sharedCacheHeadersOf(res: Response): string[] {
  return SHARED_CACHE_HEADERS.filter((name) => res.headers.has(name));
}

async function fetchVia(testEnv: object, request: Request) {
  const ctx = createExecutionContext();
  const res = await handle(request, testEnv as typeof env, ctx);
  return { res, ctx };
}

function pageRequest(path: string, init: RequestInit & { cookie?: string } = {}, base = "https://shop.test") {
  const headers = new Headers(init.headers);
  if (!headers.has("user-agent")) headers.set("user-agent", BROWSER_UA);
  if (init.cookie) headers.set("cookie", init.cookie);
  return new Request(`${base}${path}`, { redirect: "manual", ...init, headers });
}

describe("waiting for the origin", () => {
  it("an origin that never answers gets the visitor a 504 page, not cacheable, logged origin_timeout", async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      lines.push(String(line));
    });
    try {
      const { res, ctx } = await fetchVia({ ...env, ORIGIN_TIMEOUT_MS: "50" }, pageRequest("/hang"));
      expect(res.status).toBe(504);
      expect(res.headers.get("content-type")).toContain("text/html");
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(await res.text()).toContain("took too long");
      await waitOnExecutionContext(ctx);
    } finally {
      spy.mockRestore();
    }
    const timeouts = lines
      .map((l) => JSON.parse(l) as { msg: string })
      .filter((l) => l.msg === "origin_timeout");
    expect(timeouts).toHaveLength(1);
  });

  it("the timeout bounds the wait for headers only: a page still streaming past it arrives whole", async () => {
    // The origin answers its headers at once and holds the rest of the page; the clock (timers
    // faked, nothing else) then runs well past the timeout before the rest is let go. A crawler asks,
    // so no visitor object is touched: the faked timers are the proxy's alone (an object's own
    // timer, fired from the test, would be I/O on its behalf from outside it).
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      let release = () => {};
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      const encoder = new TextEncoder();
      const origin = {
        fetch: async () =>
          new Response(
            new ReadableStream({
              async start(controller) {
                controller.enqueue(encoder.encode("<!doctype html><html><body><p>first chunk</p>"));
                await held;
                controller.enqueue(encoder.encode("<p>last chunk</p></body></html>"));
                controller.close();
              },
            }),
            { headers: { "content-type": "text/html" } },
          ),
      };
      const { res, ctx } = await fetchVia(
        { ...env, ORIGIN_TIMEOUT_MS: "50", ORIGIN_SERVICE: origin },
        pageRequest("/held", { headers: { "accept-encoding": "identity", "user-agent": CRAWLER } }),
      );
      expect(res.status).toBe(200);
      const page = res.text();
      await vi.advanceTimersByTimeAsync(60_000);
      release();
      const html = await page;
      expect(html).toContain("first chunk");
      expect(html).toContain("last chunk");
      await waitOnExecutionContext(ctx);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("an origin that resets in the middle of the body", () => {
  it("a personalized page that breaks off carries no header that lets a shared cache keep it", async () => {
    const { res } = await fetchVia(env, pageRequest("/reset-mid-body"));
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("private, no-store");
    expect(sharedCacheHeadersOf(res)).toEqual([]);
    await expect(res.text()).rejects.toThrow();
  });

  it("a pass-through page keeps the origin's policy and breaks off with an error, never a clean end", async () => {
    await publish({
      version: "no-slots-here",
      placements: { hero: { selector: "#hero", pages: ["/elsewhere"] } },
      experiences: [],
    });
    const quiet = { ...env, BEACON_AUTO_INJECT: "false" };
    const { res } = await fetchVia(quiet, pageRequest("/reset-mid-body"));
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    // A clean end would let a cache take the half page for the whole one; an error tells it not to.
    await expect(res.text()).rejects.toThrow();
  });
});

describe("a page the rules leave alone", () => {
  it("is the origin's page with its caching headers and no cookie, for a new and a returning visitor, while the rules load and once they are held", async () => {
    await publish({
      version: "nothing-on-cdn-cached",
      placements: { hero: { selector: "#hero", pages: ["/elsewhere"] } },
      experiences: [],
    });
    const cookie = await newVisitor();
    const quiet = { ...env, BEACON_AUTO_INJECT: "false" };
    // The first request after a reset loads the rules; the next ones answer from what the isolate holds.
    resetRulesCache();
    for (const visitor of [undefined, cookie, undefined, cookie]) {
      const { res } = await fetchVia(quiet, pageRequest("/cdn-cached", visitor ? { cookie: visitor } : {}));
      const html = await res.text();
      expect(html).toContain("<h1>Default hero</h1>");
      expect(html).not.toContain("<script");
      expect(res.headers.get("cache-control")).toBe("public, max-age=300");
      expect(res.headers.get("surrogate-key")).toBe("page-cached");
      expect(res.headers.getSetCookie()).toEqual([]);
      expect(res.headers.get(readConfig(quiet).config.RULES_HEADER)).toBe("nothing-on-cdn-cached");
    }
  });
});

describe("pages that depend on the visitor are private", () => {
  it("a personalized page loses the origin's CDN-Cache-Control, Surrogate-Control, Surrogate-Key, Cache-Tag and Expires", async () => {
    const { res } = await fetchVia(env, pageRequest("/cdn-cached"));
    const html = await res.text();
    expect(html).toContain("First time here?");
    expect(res.headers.get("cache-control")).toBe("private, no-store");
    expect(sharedCacheHeadersOf(res)).toEqual([]);
  });

  it("HEAD on a personalized page is private like its GET, without the origin's shared-cache headers", async () => {
    const { res } = await fetchVia(env, pageRequest("/cdn-cached", { method: "HEAD" }));
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("private, no-store");
    expect(sharedCacheHeadersOf(res)).toEqual([]);
    expect(res.headers.getSetCookie()).toEqual([]);
  });

  it("HEAD on an asset keeps the origin's caching policy", async () => {
    const { res } = await fetchVia(env, pageRequest("/binary", { method: "HEAD" }));
    expect(res.headers.get("cache-control")).toBe("public, max-age=3600");
  });

  it("a returning visitor whose slots all resolve to the default still gets a private page", async () => {
    const cookie = await newVisitor();
    await publish({
      version: "defaults-only",
      placements: { hero: { selector: "#hero", pages: ["/cdn-cached"] } },
      experiences: [
        {
          id: "for-regulars",
          placement: "hero",
          audience: { op: "gte", path: "visitor.sessionCount", value: 1000 },
          content: { html: "<h1>Welcome back, regular</h1>" },
        },
      ],
    });
    for (const beacon of ["true", "false"]) {
      const { res, ctx } = await fetchVia(
        originAfterDecision({ BEACON_AUTO_INJECT: beacon }),
        pageRequest("/cdn-cached", { cookie }),
      );
      const html = await res.text();
      await waitOnExecutionContext(ctx);
      expect(html).toContain("Default hero");
      expect(res.headers.getSetCookie()).toEqual([]);
      expect(res.headers.get("cache-control")).toBe("private, no-store");
      expect(sharedCacheHeadersOf(res)).toEqual([]);
    }
  });
});

describe("configuration", () => {
  it("ORIGIN_TIMEOUT_MS and PUBLIC_ORIGIN out of bounds are reported and replaced by their defaults", () => {
    const { config, problems } = readConfig({
      ...env,
      ORIGIN_TIMEOUT_MS: "0",
      PUBLIC_ORIGIN: "https://shop.example/shop",
    });
    expect(problems).toHaveLength(2);
    expect(config.ORIGIN_TIMEOUT_MS).toBe(10_000);
    expect(config.PUBLIC_ORIGIN).toBeUndefined();
    const other = readConfig({ ...env, ORIGIN_TIMEOUT_MS: "100001", PUBLIC_ORIGIN: "ftp://shop.example" });
    expect(other.problems).toHaveLength(2);
  });

  it("PUBLIC_ORIGIN is kept as the origin it names", () => {
    const { config, problems } = readConfig({ ...env, PUBLIC_ORIGIN: "https://Shop.Example:8443/" });
    expect(problems).toEqual([]);
    expect(config.PUBLIC_ORIGIN).toBe("https://shop.example:8443");
  });
});

describe("redirects from the origin", () => {
  const origin = { ...env, ORIGIN: "http://127.0.0.1:8822" };

  it("with PUBLIC_ORIGIN set, a Location on the origin moves onto the public host, whatever Host the client sent", async () => {
    const configured = { ...origin, PUBLIC_ORIGIN: "https://www.shop.example" };
    // Under `wrangler dev` the request URL carries the Host header the client chose.
    const { res } = await fetchVia(
      configured,
      pageRequest("/redirect-origin-port", { headers: { host: "shop.example" } }, "http://shop.example"),
    );
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("https://www.shop.example/landing?from=origin");
  });

  it("without PUBLIC_ORIGIN, a Location on the origin moves onto the request's host, without the origin's port", async () => {
    const { res } = await fetchVia(
      origin,
      pageRequest("/redirect-origin-port", { headers: { host: "shop.example" } }, "http://shop.example"),
    );
    expect(res.headers.get("location")).toBe("http://shop.example/landing?from=origin");
  });

  it("a Location on another host passes unchanged", async () => {
    const { res } = await fetchVia(
      { ...origin, PUBLIC_ORIGIN: "https://www.shop.example" },
      pageRequest("/redirect-external"),
    );
    expect(res.headers.get("location")).toBe("https://elsewhere.example/page");
  });
});

afterEach(async () => {
  // Back to the rules bundled at build time for the next test.
  await env.RULES.delete(ACTIVE_KEY);
  resetRulesCache();
});

// Rules published to the RULES KV namespace as `npm run rules -- publish` writes them, then loaded
// (a cold isolate would otherwise serve the bundled rules if KV were slower than the store deadline).
async function publish(doc: Record<string, unknown>): Promise<void> {
  await publishDoc(doc);
  const loaded = await activeRules(env, undefined, 10_000);
  if (loaded?.version !== doc.version) throw new Error("the published rules did not load");
}
