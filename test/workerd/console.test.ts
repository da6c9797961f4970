import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import bundled from "../../rules/northstar.rules.json";
import { sealSession } from "../../src/console/session.ts";
import { ACTIVE_KEY, parseRules, publishRules, type RulesDocument } from "../../src/rules/index.ts";
import { resetRulesCache } from "../../src/state/rules-loader.ts";
import { ADMIN, rulesKv, visit } from "./helpers.ts";

const BASE = "/_ns/console";
const ORIGIN = "https://shop.test";
const TOKEN = env.ADMIN_TOKEN as string;

function form(fields: Record<string, string>, cookie?: string, origin: string | null = ORIGIN) {
  return {
    method: "POST",
    ...(cookie ? { cookie } : {}),
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      ...(origin ? { origin } : {}),
    },
    body: new URLSearchParams(fields).toString(),
  };
}

let signIns = 0;

/**
 * Signs in as a browser does and returns the session cookie (`ns_console=…`). Each from an address
 * of its own: sign-in attempts are limited per address, and this is not what those tests count.
 */
async function signIn(): Promise<string> {
  const init = form({ token: TOKEN });
  const res = await visit(`${BASE}/sign-in`, {
    ...init,
    headers: { ...init.headers, "cf-connecting-ip": `198.51.100.${++signIns}` },
  });
  expect(res.status).toBe(303);
  const set = res.headers.getSetCookie().find((c) => c.startsWith("ns_console="));
  return set!.split(";")[0]!;
}

/** The CSRF token the console's forms carry for this session. */
async function csrfOf(cookie: string): Promise<string> {
  const text = await (await visit(`${BASE}/experiments`, { cookie })).text();
  return /name="csrf" value="([^"]+)"/.exec(text)![1]!;
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(new Date("2026-11-29T10:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
});

describe("console sign-in", () => {
  it("without a session, a page redirects to sign-in and a change is refused", async () => {
    const page = await visit(`${BASE}/experiments`);
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe(`${BASE}/sign-in`);
    const change = await visit(`${BASE}/rules/rollback`, form({ to: "x", csrf: "x" }));
    expect(change.status).toBe(401);
  });

  it("a wrong token is refused and sets no cookie", async () => {
    const res = await visit(`${BASE}/sign-in`, form({ token: "not-the-token" }));
    expect(res.status).toBe(401);
    expect(res.headers.getSetCookie()).toEqual([]);
  });

  it("the admin token gets an HttpOnly, Secure, SameSite=Strict session cookie scoped to the console that opens its pages", async () => {
    const res = await visit(`${BASE}/sign-in`, form({ token: TOKEN }));
    expect(res.status).toBe(303);
    const set = res.headers.getSetCookie().find((c) => c.startsWith("ns_console="))!;
    expect(set).toMatch(/; Max-Age=28800; Path=\/_ns\/console; HttpOnly; Secure; SameSite=Strict$/);
    const page = await visit(`${BASE}/experiments`, { cookie: set.split(";")[0]! });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("hero-test");
    const csp = page.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain("unsafe-inline");
  });

  it("sign-in attempts past ten a minute from one address are refused with 429, the right token too", async () => {
    const from = (token: string) => {
      const init = form({ token });
      return visit(`${BASE}/sign-in`, {
        ...init,
        headers: { ...init.headers, "cf-connecting-ip": "203.0.113.7" },
      });
    };
    for (let i = 0; i < 10; i++) expect((await from("wrong-token")).status).toBe(401);
    const refused = await from(TOKEN);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("60");
    expect(refused.headers.getSetCookie()).toEqual([]);
  });

  it("a sign-in from another origin is refused", async () => {
    const res = await visit(`${BASE}/sign-in`, form({ token: TOKEN }, undefined, "https://evil.test"));
    expect(res.status).toBe(403);
    expect(res.headers.getSetCookie()).toEqual([]);
  });

  it("a forged cookie is no session", async () => {
    const cookie = await signIn();
    const [payload, signature] = cookie.slice("ns_console=".length).split(".");
    const longer = btoa(JSON.stringify({ exp: 4102444800, nonce: "AAAAAAAAAAAAAAAAAAAAAA" }))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
    for (const forged of [`ns_console=${longer}.${signature}`, `ns_console=${payload}.${"A".repeat(43)}`]) {
      const res = await visit(`${BASE}/experiments`, { cookie: forged });
      expect(res.status).toBe(303);
      expect(res.headers.get("location")).toBe(`${BASE}/sign-in`);
    }
  });

  it("an expired cookie is no session", async () => {
    const cookie = await signIn();
    expect((await visit(`${BASE}/experiments`, { cookie })).status).toBe(200);
    vi.setSystemTime(new Date("2026-11-29T18:00:01Z")); // 8 hours and a second later
    const res = await visit(`${BASE}/experiments`, { cookie });
    expect(res.status).toBe(303);
    const old = await sealSession(TOKEN, { exp: Math.floor(Date.now() / 1000) - 1, nonce: "B".repeat(22) });
    expect((await visit(`${BASE}/experiments`, { cookie: `ns_console=${old}` })).status).toBe(303);
  });

  it("a change without the session's CSRF token, or from another origin, is refused with 403", async () => {
    const cookie = await signIn();
    const csrf = await csrfOf(cookie);
    expect((await visit(`${BASE}/sign-out`, form({}, cookie))).status).toBe(403);
    expect((await visit(`${BASE}/sign-out`, form({ csrf: "forged" }, cookie))).status).toBe(403);
    expect((await visit(`${BASE}/sign-out`, form({ csrf }, cookie, "https://evil.test"))).status).toBe(403);
    expect((await visit(`${BASE}/sign-out`, form({ csrf }, cookie, null))).status).toBe(403);
  });

  it("signing out ends the cookie", async () => {
    const cookie = await signIn();
    const res = await visit(`${BASE}/sign-out`, form({ csrf: await csrfOf(cookie) }, cookie));
    expect(res.status).toBe(303);
    expect(res.headers.getSetCookie()[0]).toMatch(/^ns_console=; Max-Age=0; Path=\/_ns\/console/);
  });
});

describe("console pages", () => {
  it("a person's id and the page asked for are escaped wherever they are written", async () => {
    const cookie = await signIn();
    const res = await visit(
      `${BASE}/person?id=${encodeURIComponent("<img src=x onerror=alert(1)>")}&url=%22%3E%3Cb%3E`,
      {
        cookie,
      },
    );
    const text = await res.text();
    expect(text).not.toContain("<img src=x");
    expect(text).not.toContain('"><b>');
    expect(text).toContain("&lt;img src=x onerror=alert(1)&gt;");
  });

  it("looking up an id nothing is held on says so, and leaves nothing held on it", async () => {
    const cookie = await signIn();
    const id = "NoSuchVisitor_0123456789";
    const text = await (await visit(`${BASE}/person?id=${id}`, { cookie })).text();
    expect(text).toContain("nothing is held on this person");
    const after = await visit(`/_ns/v1/profiles/${id}`, { headers: ADMIN });
    expect(after.status).toBe(404);
  });

  it("rules: the history, a diff of two versions, and a confirmed rollback that moves the active pointer", async () => {
    const parsed = parseRules(bundled);
    if (!parsed.ok) throw new Error("bundled rules invalid");
    const first: RulesDocument = { ...parsed.rules, version: "2026.11.29-1" };
    const second: RulesDocument = {
      ...parsed.rules,
      version: "2026.11.29-2",
      settings: { ...parsed.rules.settings, holdout: 0.05 },
    };
    for (const doc of [first, second]) {
      const published = await publishRules(
        rulesKv,
        doc,
        { generatedAt: new Date().toISOString() },
        new Date().toISOString(),
      );
      expect(published.ok).toBe(true);
    }
    resetRulesCache();
    const cookie = await signIn();
    const rules = await (await visit(`${BASE}/rules`, { cookie })).text();
    expect(rules).toMatch(/id="active">2026\.11\.29-2</);
    expect(rules).toContain('data-version="2026.11.29-1"');

    const diff = await (
      await visit(`${BASE}/rules/diff?from=2026.11.29-1&to=2026.11.29-2`, { cookie })
    ).text();
    expect(diff).toContain('<span class="del">-   &quot;version&quot;: &quot;2026.11.29-1&quot;,</span>');
    expect(diff).toContain('<span class="add">+     &quot;holdout&quot;: 0.05,</span>');

    const confirm = await (await visit(`${BASE}/rules/rollback?to=2026.11.29-1`, { cookie })).text();
    expect(confirm).toContain("Roll back to 2026.11.29-1");
    expect(((await env.RULES.get(ACTIVE_KEY, "json")) as { version: string }).version).toBe("2026.11.29-2");
    const csrf = /name="csrf" value="([^"]+)"/.exec(confirm)![1]!;
    const done = await visit(`${BASE}/rules/rollback`, form({ to: "2026.11.29-1", csrf }, cookie));
    expect(done.status).toBe(303);
    expect(((await env.RULES.get(ACTIVE_KEY, "json")) as { version: string }).version).toBe("2026.11.29-1");
  });
});
