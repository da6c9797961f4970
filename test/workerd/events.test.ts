import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { VisitorDO } from "../../src/state/visitor-do.ts";
import { canonicalForUser, signIdentityToken } from "../../src/state/visitor-id.ts";
import { ADMIN, eid, idOf, newVisitor, poisonScoring, SERVER, sendEvents, visit } from "./helpers.ts";

type Accepted = {
  accepted: number;
  duplicates: number;
  stored: number;
  rejected: Array<{ index: number; issues: Array<{ path: string }> }>;
};

async function profile(id: string) {
  const res = await visit(`/_ns/v1/profiles/${id}`, { headers: ADMIN });
  return {
    status: res.status,
    body: (await res.json()) as {
      state: {
        events: Array<{ id: string; type: string; ts: number }>;
        intent: Record<string, { value: number }>;
      } | null;
      deadLetters: unknown[];
      traits: Record<string, unknown>;
      aliases: string[];
    },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("POST /_ns/v1/events", () => {
  it("stores a sendBeacon batch (text/plain); a replayed event id is counted once", async () => {
    const cookie = await newVisitor();
    const id = eid();
    const batch = [{ id, type: "add_to_cart", props: { category: "running", value: 129 } }];
    const first = (await (await sendEvents(cookie, batch)).json()) as Accepted;
    const again = (await (
      await sendEvents(cookie, batch, { contentType: "application/json" })
    ).json()) as Accepted;
    expect(first).toMatchObject({ accepted: 1, duplicates: 0 });
    expect(again).toMatchObject({ accepted: 0, duplicates: 1 });
    const { body } = await profile(idOf(cookie));
    expect(body.state!.events.filter((e) => e.id === id)).toHaveLength(1);
    expect(body.state!.intent.running?.value).toBeGreaterThan(0);
  });

  it("one bad event does not sink the batch: rejections by index, kept as dead letters", async () => {
    const cookie = await newVisitor();
    const res = await sendEvents(cookie, [
      { id: eid(), type: "page_view", props: { path: "/" } },
      { id: eid(), type: "Bad Type!" },
      { id: eid(), type: "search", ts: Date.now() + 3600e3 },
      { type: "no_id" },
    ]);
    expect(res.status).toBe(202);
    const body = (await res.json()) as Accepted;
    expect(body.accepted).toBe(1);
    expect(body.rejected.map((r) => r.index)).toEqual([1, 2, 3]);
    expect(body.rejected[0]!.issues[0]!.path).toBe("events.1.type");
    expect(body.rejected[1]!.issues[0]!.path).toBe("events.2.ts");
    expect((await profile(idOf(cookie))).body.deadLetters).toHaveLength(3);
  });

  it("an event type named like an Object member (constructor) is stored with its last time, not counted by a prototype's member; a retry stays a duplicate", async () => {
    const cookie = await newVisitor();
    const batch = [
      { id: eid(), type: "constructor" },
      { id: eid(), type: "constructor" },
      // camelCase names fail the snake_case rule: a per-event rejection, never a 500.
      { id: eid(), type: "toString" },
      { id: eid(), type: "hasOwnProperty" },
    ];
    const res = await sendEvents(cookie, batch);
    expect(res.status).toBe(202);
    const body = (await res.json()) as Accepted;
    expect(body).toMatchObject({ accepted: 2, duplicates: 0 });
    expect(body.rejected.map((r) => r.index)).toEqual([2, 3]);
    const again = (await (await sendEvents(cookie, batch.slice(0, 2))).json()) as Accepted;
    expect(again).toMatchObject({ accepted: 0, duplicates: 2 });
    const state = (await profile(idOf(cookie))).body.state as unknown as {
      events: Array<{ type: string }>;
      counts: Record<string, Array<[number, number]>>;
      lastByType: Record<string, number>;
    };
    expect(state.events.filter((e) => e.type === "constructor")).toHaveLength(2);
    // No rule counts it; counted without rules, it gets its own bucket (test/core/state.test.ts).
    expect(Object.hasOwn(state.counts, "constructor")).toBe(false);
    expect(typeof new Map(Object.entries(state.lastByType)).get("constructor")).toBe("number");
  });

  it("accepts the standard event types and any custom snake_case type", async () => {
    const cookie = await newVisitor();
    const types = [
      "page_view",
      "product_view",
      "add_to_cart",
      "purchase",
      "email_open",
      "email_click",
      "sms_click",
      "search",
      "wishlist_add",
      "store_visit2",
    ];
    const res = await sendEvents(
      cookie,
      types.map((type) => ({ id: eid(), type })),
    );
    expect(await res.json()).toMatchObject({ accepted: types.length, rejected: [] });
    const stored = (await profile(idOf(cookie))).body.state!.events.map((e) => e.type);
    for (const type of types) expect(stored).toContain(type);
  });

  it("reads timestamp and properties as ts and props (epoch ms or ISO 8601), stored under the canonical names", async () => {
    // The clock stands still (Date faked, nothing else): sender and worker read the same time.
    vi.useFakeTimers({ toFake: ["Date"] });
    const cookie = await newVisitor();
    const at = Date.now() - 60e3;
    const [iso, epoch, both, badTime] = [eid(), eid(), eid(), eid()];
    const res = await sendEvents(cookie, [
      { id: iso, type: "purchase", timestamp: new Date(at).toISOString(), properties: { value: 80 } },
      { id: epoch, type: "search", timestamp: at - 1000, props: { q: "boots" } },
      { id: both, type: "search", ts: at, timestamp: at },
      { id: badTime, type: "search", timestamp: "yesterday" },
    ]);
    const body = (await res.json()) as Accepted;
    expect(body.accepted).toBe(2);
    expect(body.rejected.map((r) => [r.index, r.issues[0]!.path])).toEqual([
      [2, "events.2.timestamp"],
      [3, "events.3.timestamp"],
    ]);
    const events = (await profile(idOf(cookie))).body.state!.events as unknown as Array<{
      id: string;
      ts: number;
      props: Record<string, unknown>;
    }>;
    const purchase = events.find((e) => e.id === iso)!;
    // Shifted only by the sender's clock skew (sentAt), none here.
    expect(purchase.ts).toBe(at);
    expect(purchase.props).toEqual({ value: 80 });
    expect(purchase).not.toHaveProperty("properties");
    const search = events.find((e) => e.id === epoch)!;
    expect(search.ts - purchase.ts).toBe(-1000);
    expect(search.props).toEqual({ q: "boots" });
  });

  it("corrects device clock skew from sentAt", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const cookie = await newVisitor();
    const skew = 2 * 3600e3; // the device clock runs two hours fast
    const deviceNow = Date.now() + skew;
    const id = eid();
    await visit("/_ns/v1/events", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sentAt: deviceNow, events: [{ id, type: "page_view", ts: deviceNow - 60e3 }] }),
    });
    const stored = (await profile(idOf(cookie))).body.state!.events.find((e) => e.id === id)!;
    // The worker's clock is the sender's here (frozen), so the correction is exactly the skew.
    expect(stored.ts).toBe(Date.now() - 60e3);
  });

  it.each([
    [
      "a batch over 500 KB, whatever Content-Length claims",
      413,
      () => ({
        headers: { "content-type": "application/json", "content-length": "10" },
        body: JSON.stringify({
          events: [{ id: "x", type: "page_view", props: { pad: "x".repeat(600_000) } }],
        }),
      }),
    ],
    [
      "a beacon over 64 KB",
      413,
      () => ({
        headers: { "content-type": "text/plain" },
        body: JSON.stringify({
          events: [{ id: "x", type: "page_view", props: { pad: "x".repeat(70_000) } }],
        }),
      }),
    ],
    [
      "JSON nested too deep",
      400,
      () => ({
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          events: [{ id: "x", type: "t", props: JSON.parse("[".repeat(20) + "]".repeat(20)) }],
        }),
      }),
    ],
    [
      "more than 100 events",
      400,
      () => ({
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          events: Array.from({ length: 101 }, (_, i) => ({ id: `e${i}`, type: "page_view" })),
        }),
      }),
    ],
    ["not JSON", 400, () => ({ headers: { "content-type": "application/json" }, body: "{nope" })],
    [
      "a __proto__ key",
      400,
      () => ({
        headers: { "content-type": "application/json" },
        body: '{"events":[{"id":"x","type":"t","props":{"__proto__":{"admin":true}}}]}',
      }),
    ],
    [
      "a visitorId from a browser",
      403,
      () => ({
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ visitorId: "someone-else-12345678", events: [{ id: "x", type: "t" }] }),
      }),
    ],
    [
      "a malformed visitor id from a server",
      400,
      () => ({
        headers: { "content-type": "application/json", ...SERVER },
        body: JSON.stringify({ visitorId: "../../etc", events: [{ id: "x", type: "t" }] }),
      }),
    ],
  ])("answers %s with %i and a JSON error", async (_name, status, init) => {
    const cookie = await newVisitor();
    const res = await visit("/_ns/v1/events", { method: "POST", cookie, ...init() });
    expect(res.status).toBe(status);
    expect(((await res.json()) as { error: string }).error).toBeTruthy();
  });

  it("caps one visitor's rate with 429 and Retry-After", async () => {
    const cookie = await newVisitor();
    const batch = (n: number) => Array.from({ length: n }, () => ({ id: eid(), type: "page_view" }));
    // A burst of 200 is allowed (the first visit's page view took one), then 20 per second.
    expect((await sendEvents(cookie, batch(90))).status).toBe(202);
    expect((await sendEvents(cookie, batch(90))).status).toBe(202);
    const limited = await sendEvents(cookie, batch(100));
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  it("server senders write offline and other-channel behaviour into the same person", async () => {
    const res = await visit("/_ns/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json", ...SERVER },
      body: JSON.stringify({
        userId: "crm-42",
        events: [
          { id: eid(), type: "email_click", channel: "email" },
          { id: eid(), type: "purchase", channel: "pos", props: { value: 80 } },
        ],
      }),
    });
    expect(res.status).toBe(202);
    const { body } = await profile("user:crm-42");
    expect(body.state!.events.map((e) => e.type).sort()).toEqual(["email_click", "purchase"]);
  });

  it("any JSON thrown at it gets a 2xx or 4xx JSON answer, never a 500, and accepted events are kept", async () => {
    const cookie = await newVisitor();
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), fc.boolean(), async (value, wrap) => {
        const body = wrap ? { events: [value, { id: eid(), type: "page_view" }] } : value;
        const res = await visit("/_ns/v1/events", {
          method: "POST",
          cookie,
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        expect(res.status).toBeLessThan(500);
        expect(res.headers.get("content-type")).toContain("application/json");
        if (res.status === 202) accepted += ((await res.json()) as Accepted).accepted;
        else await res.arrayBuffer();
      }),
      { numRuns: 60 },
    );
    const stored = (await profile(idOf(cookie))).body.state?.events.length ?? 0;
    expect(stored).toBe(accepted); // the first page, without a cookie, stored nothing
  }, 30_000);
});

describe("consent and privacy", () => {
  it("with personalization consent withdrawn, nothing is stored", async () => {
    const cookie = await newVisitor();
    const c = await visit("/_ns/v1/consent", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ purposes: { personalization: false } }),
    });
    expect(c.status).toBe(200);
    const res = (await (
      await sendEvents(cookie, [{ id: eid(), type: "add_to_cart" }])
    ).json()) as Accepted & { reason: string };
    expect(res).toMatchObject({ stored: 0, reason: "consent" });
    expect((await profile(idOf(cookie))).body.state!.events.some((e) => e.type === "add_to_cart")).toBe(
      false,
    );
  });

  it("Sec-GPC: 1 is an opt-out", async () => {
    const cookie = await newVisitor();
    const res = (await (
      await sendEvents(cookie, [{ id: eid(), type: "search" }], { headers: { "sec-gpc": "1" } })
    ).json()) as Accepted & { reason: string };
    expect(res).toMatchObject({ stored: 0, reason: "gpc" });
  });

  it("export shows everything held; erase removes it everywhere and refuses later events", async () => {
    const cookie = await newVisitor();
    const id = idOf(cookie);
    await sendEvents(cookie, [{ id: eid(), type: "product_view", props: { category: "hiking" } }]);
    await visit(`/_ns/v1/profiles/${id}/traits`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ firstName: "Zoë", tier: "gold" }),
    });
    const exported = await profile(id);
    expect(exported.status).toBe(200);
    expect(exported.body.traits).toEqual({ firstName: "Zoë", tier: "gold" });
    expect(exported.body.state!.events.length).toBeGreaterThan(0);
    expect((await visit(`/_ns/v1/profiles/${id}`)).status).toBe(401);

    const erased = await visit(`/_ns/v1/profiles/${id}`, { method: "DELETE", headers: ADMIN });
    expect(erased.status).toBe(200);
    expect((await profile(id)).status).toBe(404);
    expect(await env.PROFILES.get(`profile:${id}`)).toBeNull();
    const later = await sendEvents(cookie, [{ id: eid(), type: "page_view" }]);
    expect(later.status).toBe(410);
  });
});

describe("identity stitching", () => {
  it("a signed identity token links the browser to the person; merging twice changes nothing", async () => {
    const cookie = await newVisitor();
    await sendEvents(cookie, [
      { id: eid(), type: "product_view", props: { category: "running" } },
      { id: eid(), type: "add_to_cart", props: { category: "running" } },
    ]);
    const token = await signIdentityToken(
      env.IDENTITY_SECRET as string,
      "customer-7",
      Math.floor(Date.now() / 1000) + 600,
    );
    const linked = await visit("/_ns/v1/identify", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token }),
    });
    expect(linked.status).toBe(200);
    const canonical = await canonicalForUser("customer-7");
    // The two events the browser sent (its first page, without a cookie, stored nothing).
    expect(await linked.json()).toMatchObject({ visitorId: canonical, merged: true, mergedEvents: 2 });
    const newCookie = linked.headers.getSetCookie().find((c) => c.includes("ns_vid="))!;
    expect(newCookie).toContain(canonical);

    // A token signs in once: the second sign-in brings a fresh one.
    const fresh = await signIdentityToken(
      env.IDENTITY_SECRET as string,
      "customer-7",
      Math.floor(Date.now() / 1000) + 600,
    );
    const again = await visit("/_ns/v1/identify", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: fresh }),
    });
    expect(await again.json()).toMatchObject({ merged: false });
    const { body } = await profile("user:customer-7");
    expect(body.state!.events.filter((e) => e.type === "add_to_cart")).toHaveLength(1);
    expect(body.aliases).toContain(idOf(cookie));

    // Later events under the anonymous cookie land in the known profile.
    await sendEvents(cookie, [{ id: eid(), type: "search", props: { q: "socks" } }]);
    expect((await profile("user:customer-7")).body.state!.events.some((e) => e.type === "search")).toBe(true);
  });

  it("a bare user id from a browser never attaches it to someone's profile", async () => {
    const cookie = await newVisitor();
    const res = await visit("/_ns/v1/identify", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ anonymousId: idOf(cookie), userId: "victim" }),
    });
    expect(res.status).toBe(403);
    const forged = await visit("/_ns/v1/identify", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: "dmljdGlt.9999999999.AAAA" }),
    });
    expect(forged.status).toBe(403);
  });

  it("never merges a visitor already linked to another known person: the browser switches to the new one", async () => {
    const cookie = await newVisitor();
    const sign = (u: string) =>
      signIdentityToken(env.IDENTITY_SECRET as string, u, Math.floor(Date.now() / 1000) + 600);
    const body = async (u: string) => JSON.stringify({ token: await sign(u) });
    expect(
      (
        await visit("/_ns/v1/identify", {
          method: "POST",
          cookie,
          headers: { "content-type": "application/json" },
          body: await body("alice"),
        })
      ).status,
    ).toBe(200);
    const second = await visit("/_ns/v1/identify", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: await body("bob"),
    });
    expect(second.status).toBe(200);
    expect(await second.json()).toMatchObject({ merged: false, switched: true });
  });
});

describe("an event the visitor's object cannot apply", () => {
  it("is reported by index with the rest of the batch stored, never a 500, and kept for inspection", async () => {
    const cookie = await newVisitor();
    const id = idOf(cookie);
    await runInDurableObject(env.VISITOR.get(env.VISITOR.idFromName(id)), async (instance: VisitorDO) => {
      // A defect every attempt meets: scoring throws on `search` events, in this object only.
      await poisonScoring(instance, "search");
    });
    const batch = [
      { id: eid(), type: "product_view", props: { category: "running" } },
      { id: eid(), type: "search", props: { query: "trail shoes" } },
      { id: eid(), type: "add_to_cart", props: { category: "running" } },
    ];
    const res = await sendEvents(cookie, batch);
    expect(res.status).toBe(202);
    const body = (await res.json()) as Accepted & {
      rejected: Array<{ index: number; issues: Array<{ message: string }> }>;
    };
    expect(body.accepted).toBe(2);
    expect(body.rejected).toEqual([
      { index: 1, issues: [{ path: "events.1", message: "not applied: scoring exploded" }] },
    ]);
    const held = await profile(id);
    const kept = held.body.state?.events.map((e) => e.id) ?? [];
    expect(kept).toEqual(expect.arrayContaining([batch[0]!.id, batch[2]!.id]));
    expect(kept).not.toContain(batch[1]!.id);
  });
});
