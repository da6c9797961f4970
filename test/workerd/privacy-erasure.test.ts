// Consent, Global Privacy Control, export, erasure and suppression through the API, inside
// workerd with the real PROFILES namespace and visitor objects.

import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { handle } from "../../src/http/app.ts";
import { experimentObject, personRows } from "../../src/measure/experiment-object.ts";
import type { Env } from "../../src/platform/env.ts";
import { redactedLine } from "../../src/platform/log.ts";
import { suppressedKey } from "../../src/state/profiles.ts";
import { canonicalForUser, signIdentityToken } from "../../src/state/visitor-id.ts";
import { visitorObject } from "../../src/state/visitor-object.ts";
import {
  ADMIN,
  BROWSER_UA,
  eid,
  idOf,
  newVisitor,
  SERVER,
  sendEvents,
  visit,
  visitorCookie,
} from "./helpers.ts";

let users = 0;
const newUser = () => `privacy-${Date.now()}-${++users}`;

const serverEvents = (userId: string, events: unknown[]) =>
  visit("/_ns/v1/events", {
    method: "POST",
    headers: { "content-type": "application/json", ...SERVER },
    body: JSON.stringify({ userId, events }),
  });

async function exported(id: string) {
  const res = await visit(`/_ns/v1/profiles/${encodeURIComponent(id)}`, { headers: ADMIN });
  return {
    status: res.status,
    body: (await res.json()) as {
      state: { events: Array<{ id: string; type: string }> } | null;
      consent: Record<string, boolean>;
      traits: Record<string, unknown>;
      aliases: string[];
      deadLetters: Array<{ reason: string }>;
    },
  };
}

describe("consent", () => {
  it("a server sets consent for a user; without personalization consent nothing is stored", async () => {
    const user = newUser();
    await serverEvents(user, [{ id: eid(), type: "product_view", props: { category: "running" } }]);
    const res = await visit("/_ns/v1/consent", {
      method: "POST",
      headers: { "content-type": "application/json", ...SERVER },
      body: JSON.stringify({ userId: user, purposes: { personalization: false, measurement: true } }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ consent: { personalization: false, measurement: true } });
    const after = await serverEvents(user, [{ id: eid(), type: "add_to_cart" }, { type: "bad" }]);
    expect(after.status).toBe(202);
    expect(await after.json()).toMatchObject({ accepted: 0, stored: 0, reason: "consent" });
    const { body } = await exported(`user:${user}`);
    // Withdrawal also removed what was held before; rejected events are not kept either.
    expect(body.state!.events).toEqual([]);
    expect(body.deadLetters).toEqual([]);
    expect(body.consent).toEqual({ personalization: false, measurement: true });
    // KV carries it to the decision path.
    const kv = await env.PROFILES.get<{ consent: Record<string, boolean> }>(
      `profile:${await canonicalForUser(user)}`,
      "json",
    );
    expect(kv!.consent.personalization).toBe(false);
  });

  it("Sec-GPC: 1 stores nothing; with RESPECT_GPC=false the same batch is stored", async () => {
    const gpc = { "content-type": "text/plain", "sec-gpc": "1", "user-agent": BROWSER_UA };
    const body = () => JSON.stringify({ events: [{ id: eid(), type: "page_view" }] });
    const first = await visit("/_ns/v1/events", { method: "POST", headers: gpc, body: body() });
    expect(await first.json()).toMatchObject({ stored: 0, reason: "gpc" });
    const cookie = first.headers
      .getSetCookie()
      .find((c) => c.includes("ns_vid="))!
      .split(";")[0]!;
    expect(await visitorObject(env, idOf(cookie)).exportAll()).toBeNull();

    const ignoring = await handle(
      new Request("https://shop.test/_ns/v1/events", {
        method: "POST",
        headers: { ...gpc, cookie },
        body: body(),
      }),
      { ...env, RESPECT_GPC: "false" } as Env,
      createExecutionContext(),
    );
    expect(await ignoring.json()).toMatchObject({ stored: 1 });
  });
});

describe("export and erasure", () => {
  it("export holds everything; erase removes it everywhere and suppresses the person by hash", async () => {
    const cookie = await newVisitor();
    const anon = idOf(cookie);
    const user = newUser();
    const canonical = await canonicalForUser(user);
    await sendEvents(cookie, [{ id: eid(), type: "product_view", props: { category: "hiking" } }, { id: 1 }]);
    const token = await signIdentityToken(
      env.IDENTITY_SECRET as string,
      user,
      Math.floor(Date.now() / 1000) + 600,
    );
    await visit("/_ns/v1/identify", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token }),
    });
    await visit(`/_ns/v1/profiles/user:${user}/traits`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ tier: "gold" }),
    });

    const before = await exported(`user:${user}`);
    expect(before.status).toBe(200);
    expect(before.body.aliases).toEqual([anon]);
    expect(before.body.traits).toEqual({ tier: "gold" });
    expect(before.body.state!.events.map((e) => e.type)).toContain("product_view");
    expect(before.body.deadLetters).toHaveLength(1); // the rejected event came along with the merge

    const erased = await visit(`/_ns/v1/profiles/user:${user}`, { method: "DELETE", headers: ADMIN });
    expect(erased.status).toBe(200);
    expect(await erased.json()).toEqual({ erased: true, aliases: 1 });

    expect((await exported(`user:${user}`)).status).toBe(404);
    expect((await exported(anon)).status).toBe(404);
    for (const key of [`profile:${canonical}`, `alias:${anon}`, `aliases:${canonical}`]) {
      expect(await env.PROFILES.get(key)).toBeNull();
    }
    // The suppression list holds hashes, never the ids themselves.
    expect(await env.PROFILES.get(await suppressedKey(canonical))).not.toBeNull();
    const listed = await env.PROFILES.list({ prefix: "suppressed:" });
    expect(listed.keys.some((k) => k.name.includes(canonical) || k.name.includes(anon))).toBe(false);

    // Later: events (server or the old cookie), identify, traits and imports are all refused.
    const viaServer = await serverEvents(user, [{ id: eid(), type: "page_view" }]);
    expect(viaServer.status).toBe(410);
    expect(((await viaServer.json()) as { error: string }).error).toBe("suppressed");
    expect((await sendEvents(cookie, [{ id: eid(), type: "page_view" }])).status).toBe(410);
    const again = await visit("/_ns/v1/identify", {
      method: "POST",
      headers: { "content-type": "application/json", ...SERVER },
      body: JSON.stringify({ anonymousId: (await newVisitor()).split("=")[1]!.split(".")[0], userId: user }),
    });
    expect(again.status).toBe(410);
    // Someone else signing in on the erased person's browser gets it; nothing erased is linked to them.
    const other = newUser();
    const otherLogin = await visit("/_ns/v1/identify", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        token: await signIdentityToken(
          env.IDENTITY_SECRET as string,
          other,
          Math.floor(Date.now() / 1000) + 600,
        ),
      }),
    });
    expect(otherLogin.status).toBe(200);
    expect(idOf(visitorCookie(otherLogin))).toBe(await canonicalForUser(other));
    expect(await env.PROFILES.get(`aliases:${await canonicalForUser(other)}`)).toBeNull();
    const traits = await visit(`/_ns/v1/profiles/user:${user}/traits`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ tier: "gold" }),
    });
    expect(traits.status).toBe(410);
    const imported = await visit("/_ns/v1/profiles/import", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/x-ndjson" },
      body: JSON.stringify({ id: `user:${user}`, traits: { tier: "gold" } }),
    });
    expect(await imported.json()).toEqual({
      written: 0,
      errors: [{ line: 1, message: "suppressed: this person's data was erased" }],
    });
  });

  it("admin routes need the admin token; malformed ids are 400; unknown people are 404", async () => {
    expect((await visit("/_ns/v1/profiles/user:someone")).status).toBe(401);
    expect((await visit("/_ns/v1/profiles/..%2Fetc", { headers: ADMIN })).status).toBe(400);
    expect((await visit(`/_ns/v1/profiles/user:${newUser()}`, { headers: ADMIN })).status).toBe(404);
  });
});

describe("experiment rows across login and erasure", () => {
  it("an exposure before login and a conversion after it count once; export shows the rows; erasure removes them under every id", async () => {
    const results = async () =>
      (await (await visit("/_ns/v1/experiments/hero-test", { headers: ADMIN })).json()) as {
        report: { arms: Array<{ id: string; exposures: number; conversions: number }> };
      };
    const bold = async () => {
      const arm = (await results()).report.arms.find((a) => a.id === "bold")!;
      return { variant: arm.id, exposures: arm.exposures, conversions: arm.conversions };
    };
    // An anonymous visitor from an events call (no page, so no exposure of its own).
    const first = await visit("/_ns/v1/events", {
      method: "POST",
      headers: { "content-type": "text/plain", "user-agent": BROWSER_UA },
      body: JSON.stringify({ events: [{ id: eid(), type: "page_view" }] }),
    });
    const anonCookie = visitorCookie(first);
    const anon = idOf(anonCookie);
    // What a page's decision leaves behind (src/edge/personalize.ts): the sticky assignment and the
    // experiment's unique exposure, under the id the cookie carries.
    const exposedAt = Date.now();
    await visitorObject(env, anon).recordDecision({
      now: exposedAt,
      exposures: [],
      assignments: { "hero-test": "bold" },
    });
    await experimentObject(env, "hero-test", anon).expose([
      { visitorId: anon, variant: "bold", at: exposedAt },
    ]);
    const before = await bold();

    const user = newUser();
    const canonical = await canonicalForUser(user);
    const login = await visit("/_ns/v1/identify", {
      method: "POST",
      cookie: anonCookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        token: await signIdentityToken(
          env.IDENTITY_SECRET as string,
          user,
          Math.floor(Date.now() / 1000) + 600,
        ),
      }),
    });
    expect(login.status).toBe(200);
    const cookie = visitorCookie(login);

    const convert = async () => {
      const ctx = createExecutionContext();
      const res = await handle(
        new Request("https://shop.test/_ns/v1/events", {
          method: "POST",
          headers: { "content-type": "text/plain", "user-agent": BROWSER_UA, cookie },
          body: JSON.stringify({ events: [{ id: eid(), type: "add_to_cart" }] }),
        }),
        env,
        ctx,
      );
      expect(res.status).toBe(202);
      await waitOnExecutionContext(ctx); // the conversion is recorded after the answer
    };
    await convert();
    await convert();
    expect(await bold()).toEqual({
      variant: "bold",
      exposures: before!.exposures,
      conversions: before!.conversions + 1,
    });
    const rows = await personRows(env, "hero-test", [canonical, anon]);
    expect(rows).toEqual([
      {
        visitorId: canonical,
        variant: "bold",
        exposedAt,
        convertedAt: expect.any(Number),
        goals: { add_to_cart: { firstAt: expect.any(Number), value: 0 } },
      },
    ]);

    // A location where the alias has not arrived yet records under the anonymous id again.
    await experimentObject(env, "hero-test", anon).expose([
      { visitorId: anon, variant: "bold", at: Date.now() },
    ]);
    const held = await visit(`/_ns/v1/profiles/user:${user}`, { headers: ADMIN });
    const exportedRows = (
      (await held.json()) as { experiments: Array<{ experiment: string; visitorId: string }> }
    ).experiments;
    expect(exportedRows.map((r) => `${r.experiment}/${r.visitorId}`).sort()).toEqual(
      [`hero-test/${anon}`, `hero-test/${canonical}`].sort(),
    );

    expect((await visit(`/_ns/v1/profiles/user:${user}`, { method: "DELETE", headers: ADMIN })).status).toBe(
      200,
    );
    expect(await personRows(env, "hero-test", [canonical, anon])).toEqual([]);
    expect((await exported(`user:${user}`)).status).toBe(404);
    expect((await exported(anon)).status).toBe(404);
  });

  it("the anonymous profile's traits are not left behind once merged into the person's", async () => {
    const cookie = await newVisitor();
    const anon = idOf(cookie);
    const user = newUser();
    await visit(`/_ns/v1/profiles/${anon}/traits`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ tier: "silver" }),
    });
    await visit("/_ns/v1/identify", {
      method: "POST",
      headers: { "content-type": "application/json", ...SERVER },
      body: JSON.stringify({ anonymousId: anon, userId: user }),
    });
    expect((await exported(`user:${user}`)).body.traits).toEqual({ tier: "silver" });
    // What stays under the anonymous id is only the way to the person: no traits, no consent.
    const left = (await env.PROFILES.get(`profile:${anon}`, "json")) as Record<string, unknown> | null;
    expect(left).toMatchObject({ traits: {}, consent: {} });
    expect(left?.canonical).toBe(await canonicalForUser(user));
  });
});

describe("traits import", () => {
  it("coalesces lines of one id into one write and reports bad lines", async () => {
    const user = newUser();
    const lines = [
      { id: `user:${user}`, traits: { firstName: "Ana" } },
      { id: `user:${user}`, traits: { tier: "gold" } },
      { id: "bad id!", traits: {} },
      { id: `user:${user}`, traits: [] },
    ].map((l) => JSON.stringify(l));
    lines.push('{"id":"user:x","traits":{"constructor":{"prototype":{"admin":true}}}}');
    const res = await visit("/_ns/v1/profiles/import", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/x-ndjson" },
      body: lines.join("\n"),
    });
    expect(await res.json()).toEqual({
      written: 1,
      errors: [
        { line: 3, message: "id is not a visitor id or user:<userId>" },
        { line: 4, message: "traits must be an object" },
        { line: 5, message: "key not allowed: constructor" },
      ],
    });
    expect((await exported(`user:${user}`)).body.traits).toEqual({ firstName: "Ana", tier: "gold" });

    const replaced = await visit(`/_ns/v1/profiles/user:${user}/traits?mode=replace`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ tier: "platinum" }),
    });
    expect(await replaced.json()).toMatchObject({ traits: { tier: "platinum" } });
  });
});

describe("logs", () => {
  it("an error on a path naming a person logs the route pattern, never the path or an email", async () => {
    const spy = vi.spyOn(console, "log").mockImplementation(() => {});
    try {
      const failing = {
        ...env,
        PROFILES: {
          get: () => Promise.reject(new Error("KV unavailable reading profile of ana@x.com")),
        } as unknown as KVNamespace,
      };
      const res = await handle(
        new Request("https://shop.test/_ns/v1/profiles/user:ana@x.com", { headers: ADMIN }),
        failing,
        createExecutionContext(),
      );
      // Nothing could be read (KV failed, and the person has no object): a 503 (store-faults.test.ts).
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: "store_unavailable" });
      const lines = spy.mock.calls.map((call) => call.map(String).join(" "));
      const line = lines.find((l) => l.includes("store_failed"));
      expect(JSON.parse(line!)).toMatchObject({
        level: "warn",
        route: "/_ns/v1/profiles/:id",
        method: "GET",
      });
      for (const l of lines) expect(l).not.toContain("@");
    } finally {
      spy.mockRestore();
    }
  });

  it("are one JSON line each, with email addresses removed at any depth", () => {
    const line = redactedLine("info", "identified", {
      note: 'ana@example.com\r\n{"level":"error"}',
      nested: { who: ["bob.smith@example.org"] },
      level: "forged",
    });
    expect(line.split("\n")).toHaveLength(1);
    expect(line).not.toMatch(/@example/);
    expect(JSON.parse(line)).toMatchObject({
      level: "info",
      msg: "identified",
      nested: { who: ["[email]"] },
    });
  });
});
