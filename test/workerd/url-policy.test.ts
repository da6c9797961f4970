import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { handle } from "../../src/http/app.ts";
import { parseRules, publishRules } from "../../src/rules/index.ts";
import { ACTIVE_KEY } from "../../src/rules/store.ts";
import { resetRulesCache } from "../../src/state/rules-loader.ts";
import { BROWSER_UA, rulesKv, visit } from "./helpers.ts";

// Rules whose templates read the request's query: what a visitor (or a link an attacker sends them)
// puts in the URL reaches a Location header or an attribute, through the proxy.
async function publish(doc: Record<string, unknown>): Promise<void> {
  const parsed = parseRules(doc);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const now = new Date().toISOString();
  const published = await publishRules(rulesKv, parsed.rules, { generatedAt: now }, now);
  if (!published.ok) throw new Error(JSON.stringify(published));
  resetRulesCache();
}

afterEach(async () => {
  await env.RULES.delete(ACTIVE_KEY);
  resetRulesCache();
});

describe("a redirect whose target comes from the query", () => {
  const redirectRules = (version: string, settings: Record<string, unknown> = {}) => ({
    version,
    settings,
    placements: { go: { selector: "body", action: "redirect", pages: ["/"] } },
    experiences: [{ id: "next", placement: "go", content: { redirect: "{{ context.query.next }}" } }],
  });

  it("sends the visitor to a path on this site", async () => {
    await publish(redirectRules("next-1"));
    const res = await visit(`/?next=${encodeURIComponent("/landing")}`);
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("/landing");
  });

  it.each([
    "//evil.example/x",
    "/\\evil.example",
    "https:evil.example",
    "https://evil.example/x",
    "https://shop.test@evil.example/",
    "/\t/evil.example",
    " //evil.example",
    "javascript:alert(1)",
  ])("never sends the visitor to another host (%j): the origin's page is served", async (next) => {
    await publish(redirectRules("next-2"));
    const res = await visit(`/?next=${encodeURIComponent(next)}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("location")).toBeNull();
    expect(res.headers.get("x-northstar-fail-open")).toContain("redirect-refused");
    expect(await res.text()).toContain("Default hero");
  });

  it("goes to a host listed in settings.redirectHosts, and to no other", async () => {
    await publish(redirectRules("next-3", { redirectHosts: ["help.example"] }));
    const listed = await visit(`/?next=${encodeURIComponent("https://help.example/faq")}`);
    expect(listed.status).toBe(302);
    expect(listed.headers.get("location")).toBe("https://help.example/faq");
    const other = await visit(`/?next=${encodeURIComponent("https://evil.example/faq")}`);
    expect(other.status).toBe(200);
    await other.arrayBuffer();
  });
});

describe("an href filled from the query", () => {
  async function page(h: string) {
    const logged: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      logged.push(String(line));
    });
    try {
      const ctx = createExecutionContext();
      const res = await handle(
        new Request(`https://shop.test/?h=${encodeURIComponent(h)}`, {
          headers: { "user-agent": BROWSER_UA },
        }),
        env,
        ctx,
      );
      const body = await res.text();
      await waitOnExecutionContext(ctx);
      const refusals = logged
        .map((l) => JSON.parse(l) as { msg?: string; reason?: string; attribute?: string })
        .filter((l) => l.msg === "attribute_refused");
      return { body, refusals };
    } finally {
      spy.mockRestore();
    }
  }

  it("is set to a web URL, and never to a javascript: URL (the origin's element stays, refusal logged once)", async () => {
    await publish({
      version: "href-1",
      placements: { link: { selector: "#hero", action: "set_attribute", attribute: "href", pages: ["/"] } },
      experiences: [{ id: "h", placement: "link", content: { attribute: "{{ context.query.h }}" } }],
    });
    const safe = await page("/sale");
    expect(safe.body).toContain('<section id="hero" href="/sale">');

    for (const hostile of ["javascript:alert(1)", " JavaScript:alert(1)", "&#106;avascript:alert(1)"]) {
      const { body, refusals } = await page(hostile);
      expect(body).toContain('<section id="hero">');
      expect(body).not.toMatch(/href="[^"]*avascript/i);
      expect(refusals).toEqual([expect.objectContaining({ attribute: "href", reason: "url_scheme" })]);
    }
  });
});
