import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { handle } from "../../src/http/app.ts";
import { ACTIVE_KEY, parseRules, publishRules } from "../../src/rules/index.ts";
import { resetRulesCache } from "../../src/state/rules-loader.ts";
import {
  ADMIN,
  BROWSER_UA,
  eid,
  idOf,
  newVisitor,
  rulesKv,
  SERVER,
  sendEvents,
  visit,
  visitorCookie,
} from "./helpers.ts";
import { originAfterDecision } from "./origin-gate.ts";

async function page(path: string, cookie: string, testEnv: typeof env) {
  const ctx = createExecutionContext();
  const res = await handle(
    new Request(`https://shop.test${path}`, { headers: { "user-agent": BROWSER_UA, cookie } }),
    testEnv,
    ctx,
  );
  const body = await res.text();
  await waitOnExecutionContext(ctx);
  return { res, body };
}

describe("headers of a personalized page", () => {
  it("a returning visitor's page is private even though no cookie is set on it", async () => {
    const cookie = await newVisitor();
    await sendEvents(cookie, [
      { id: eid(), type: "product_view", props: { category: "running", path: "/running/road-racer" } },
      { id: eid(), type: "product_view", props: { category: "running", path: "/running/tempo-tee" } },
    ]);
    const { res, body } = await page("/", cookie, originAfterDecision());
    expect(body).toContain("Ready for your next run, runner?");
    expect(res.headers.getSetCookie().filter((c) => c.includes("ns_vid"))).toEqual([]);
    expect(res.headers.get("cache-control")).toBe("private, no-store");
    expect(res.headers.get("vary")).toMatch(/cookie/i);
  });

  it("Server-Timing shows rules, KV, the visitor's object and decide; the rules version and fail-open headers are set", async () => {
    const cookie = await newVisitor();
    const { res } = await page("/", cookie, originAfterDecision());
    const timing = res.headers.get("server-timing") ?? "";
    for (const part of ["ns-rules", "ns-kv", "ns-do", "ns-decide"]) expect(timing).toContain(`${part};dur=`);
    expect(res.headers.get("x-northstar-rules")).toBe("2026.11.24-1");
    expect(res.headers.get("x-northstar-fail-open")).toBe("none");
  });

  it("the header names are configurable, and DEBUG_HEADERS=false sends none of them", async () => {
    const cookie = await newVisitor();
    const renamed = await page(
      "/",
      cookie,
      originAfterDecision({ RULES_HEADER: "x-shop-rules", FAIL_OPEN_HEADER: "x-shop-fail-open" }),
    );
    expect(renamed.res.headers.get("x-shop-rules")).toBe("2026.11.24-1");
    expect(renamed.res.headers.get("x-shop-fail-open")).toBe("none");
    expect(renamed.res.headers.get("x-northstar-rules")).toBeNull();

    const quiet = await page("/", cookie, originAfterDecision({ DEBUG_HEADERS: "false" }));
    expect(quiet.res.headers.get("x-northstar-rules")).toBeNull();
    expect(quiet.res.headers.get("x-northstar-fail-open")).toBeNull();
    expect(quiet.res.headers.get("server-timing")).toBeNull();
    // Still personalized and still private: only the diagnostics are gone.
    expect(quiet.res.headers.get("cache-control")).toBe("private, no-store");
  });

  it("a redirect rendered with a CR/LF from the request is refused: the page is served", async () => {
    // A redirect whose target is the request's own query, so a link can put a CR/LF into it.
    const parsed = parseRules({
      version: "crlf-redirect-1",
      placements: { go: { selector: "body", action: "redirect", pages: ["/"] } },
      experiences: [{ id: "next", placement: "go", content: { redirect: "{{ context.query.next }}" } }],
    });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const published = await publishRules(rulesKv, parsed.rules, { generatedAt: "t" }, "t");
    if (!published.ok) throw new Error(published.message);
    resetRulesCache();
    try {
      const cookie = await newVisitor();
      // The same rules do redirect to a plain path on this site.
      const plain = await page(`/?next=${encodeURIComponent("/sale")}`, cookie, originAfterDecision());
      expect(plain.res.status).toBe(302);
      expect(plain.res.headers.get("location")).toBe("/sale");

      const forged = await page(
        `/?next=${encodeURIComponent("/sale\r\nSet-Cookie: a=b")}`,
        cookie,
        originAfterDecision(),
      );
      expect(forged.res.status).toBe(200);
      expect(forged.res.headers.get("location")).toBeNull();
      expect(forged.res.headers.getSetCookie().filter((c) => c.startsWith("a="))).toEqual([]);
      expect(forged.res.headers.get("x-northstar-fail-open")).toContain("redirect-refused");
      expect(forged.body).toContain("Default hero");
      expect(forged.body.trimEnd().endsWith("</html>")).toBe(true);
    } finally {
      await env.RULES.delete(ACTIVE_KEY);
      resetRulesCache();
    }
  });

  it("an exception after the origin answered serves the origin's page", async () => {
    const cookie = await newVisitor();
    // A rewriter that cannot be built (a broken runtime) is a bug past the origin fetch.
    const global = globalThis as unknown as { HTMLRewriter: typeof HTMLRewriter };
    const original = global.HTMLRewriter;
    global.HTMLRewriter = class {
      constructor() {
        throw new Error("rewriter exploded");
      }
    } as unknown as typeof HTMLRewriter;
    try {
      const { res, body } = await page("/", cookie, originAfterDecision());
      expect(res.status).toBe(200);
      expect(body).toContain("Default hero");
      expect(body.trimEnd().endsWith("</html>")).toBe(true);
    } finally {
      global.HTMLRewriter = original;
    }
  });
});

describe("a visitor stitched to a person by a server", () => {
  it("sees the person's traits on pages while the browser still holds its anonymous cookie", async () => {
    const cookie = await newVisitor();
    await sendEvents(cookie, [
      { id: eid(), type: "product_view", props: { category: "running", path: "/running/road-racer" } },
      { id: eid(), type: "product_view", props: { category: "running", path: "/running/tempo-tee" } },
    ]);
    const userId = `crm-${Date.now()}`;
    const linked = await visit("/_ns/v1/identify", {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/json" },
      body: JSON.stringify({ anonymousId: idOf(cookie), userId }),
    });
    expect(linked.status).toBe(200);
    const traits = await visit(`/_ns/v1/profiles/${encodeURIComponent(`user:${userId}`)}/traits`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ firstName: "Ana" }),
    });
    expect(traits.status).toBe(200);
    const { body } = await page("/", cookie, originAfterDecision());
    expect(body).toContain("Ready for your next run, Ana?");
  });
});

describe("crawlers", () => {
  const CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

  /** The page for a user agent, with every exposure the worker hands to an experiment recorded. */
  async function home(userAgent: string, exposed: string[], cookie?: string): Promise<Response> {
    const experiments = {
      idFromName: (name: string) => env.EXPERIMENTS.idFromName(name),
      get: (id: DurableObjectId) => {
        const real = env.EXPERIMENTS.get(id);
        return {
          expose: (rows: Array<{ variant: string }>) => {
            for (const row of rows) exposed.push(row.variant);
            return real.expose(rows as never);
          },
        };
      },
    };
    const ctx = createExecutionContext();
    const res = await handle(
      new Request("https://shop.test/", {
        headers: { "user-agent": userAgent, ...(cookie ? { cookie } : {}) },
      }),
      { ...env, EXPERIMENTS: experiments } as unknown as typeof env,
      ctx,
    );
    const body = await res.text();
    await waitOnExecutionContext(ctx);
    return new Response(body, { headers: res.headers });
  }

  it("see the A/B test like anyone, but never count in its statistics", async () => {
    const exposed: string[] = [];
    for (let i = 0; i < 5; i++) {
      // Same content as a new visitor: one arm of the hero test or the site's own hero.
      expect(await (await home(CRAWLER, exposed)).text()).toMatch(
        /Gear for every trail|Go further this weekend|Default hero/,
      );
    }
    expect(exposed).toEqual([]);
    // A person counts once they come back with the cookie (their first page counts nobody yet), in
    // whichever arm (holdout included).
    const first = await home(BROWSER_UA, exposed);
    expect(exposed).toEqual([]);
    await home(BROWSER_UA, exposed, visitorCookie(first));
    expect(exposed).toHaveLength(1);
    expect(["control", "bold", "holdout"]).toContain(exposed[0]);
  });
});

describe("preview continues with its cookie alone", () => {
  it("after opening the signed link, the next pages of that browser are previewed; another browser's are not", async () => {
    const minted = await visit("/_ns/v1/preview", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ path: "/", forced: { "home-hero": { experience: "hero-hiker" } } }),
    });
    const { url } = (await minted.json()) as { url: string };
    const opened = await visit(new URL(url).pathname + new URL(url).search);
    await opened.arrayBuffer();
    const previewCookie = opened.headers
      .getSetCookie()
      .find((c) => c.startsWith("ns_preview="))!
      .split(";")[0]!;
    const next = await (await visit("/", { cookie: previewCookie })).text();
    expect(next).toContain("The trail is calling");
    expect(next).toContain('id="ns-preview"');
    const someoneElse = await (await visit("/")).text();
    expect(someoneElse).not.toContain('id="ns-preview"');
  });
});

describe("cookie options", () => {
  it("COOKIE_NAME and COOKIE_DOMAIN name and scope the visitor cookie (no __Host- prefix with a domain)", async () => {
    const ctx = createExecutionContext();
    const res = await handle(
      new Request("https://shop.test/", { headers: { "user-agent": BROWSER_UA } }),
      {
        ...env,
        COOKIE_NAME: "shopper",
        COOKIE_DOMAIN: "shop.test",
        COOKIE_SECURE: "true",
      } as unknown as typeof env,
      ctx,
    );
    await res.arrayBuffer();
    await waitOnExecutionContext(ctx);
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith("shopper="))!;
    expect(cookie).toContain("Domain=shop.test");
    expect(cookie).toContain("Secure");
    expect(res.headers.getSetCookie().some((c) => c.includes("ns_vid") || c.startsWith("__Host-"))).toBe(
      false,
    );
  });
});

describe("the hot path's KV reads", () => {
  it("a returning visitor's page reads KV once, then the isolate's copy (a miss included)", async () => {
    const cookie = await newVisitor();
    let reads = 0;
    const counted = {
      get: (...args: Parameters<typeof env.PROFILES.get>) => {
        reads++;
        return (env.PROFILES.get as (...a: unknown[]) => unknown)(...args);
      },
    };
    const testEnv = originAfterDecision({ PROFILES: counted });
    await page("/", cookie, testEnv);
    // One read on the critical path (the budget: at most one KV read, none once cached).
    expect(reads).toBe(1);
    await page("/", cookie, testEnv);
    await page("/running", cookie, testEnv);
    expect(reads).toBe(1);
  });
});
