import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  type DecideResponse,
  NorthstarAdmin,
  NorthstarClient,
  NorthstarError,
} from "../../src/client/index.ts";
import { handle } from "../../src/http/app.ts";
import { canonicalForUser } from "../../src/state/visitor-id.ts";
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

// The JSON decision API through the typed client apps use, against the real worker.
const client = new NorthstarClient({
  baseUrl: "https://shop.test",
  apiKey: SERVER.authorization.slice("Bearer ".length),
  fetch: (input, init) => exports.default.fetch(new Request(input, init)),
});

/**
 * One request through the worker that returns once the work its answer left behind (waitUntil:
 * assignments, exposures, conversions) has finished, so what it wrote can be read at once.
 */
async function settled(request: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await handle(request, env, ctx);
  const body = await res.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return new Response(body, res);
}

const admin = new NorthstarAdmin({
  baseUrl: "https://shop.test",
  adminToken: ADMIN.authorization.slice("Bearer ".length),
  fetch: (input, init) => exports.default.fetch(new Request(input, init)),
});

/** The typed client, each call settled. */
const settledClient = new NorthstarClient({
  baseUrl: "https://shop.test",
  apiKey: SERVER.authorization.slice("Bearer ".length),
  fetch: (input, init) => settled(new Request(input, init)),
});

describe("POST /_ns/v1/decide", () => {
  it("events sent with the call count in the same decision (one round trip for apps)", async () => {
    const userId = `app-user-${Date.now()}`;
    const before = await client.decide({ userId, channel: "app", placements: ["home-hero"] });
    expect(before.decisions["home-hero"]?.experience).not.toBe("hero-hiker");
    const after = await client.decide({
      userId,
      channel: "app",
      placements: ["home-hero", "email-hero"],
      events: [
        { id: eid(), type: "product_view", channel: "app", props: { category: "hiking" } },
        { id: eid(), type: "add_to_cart", channel: "app", props: { category: "hiking" } },
      ],
    });
    expect(after.decisions["home-hero"]).toMatchObject({ experience: "hero-hiker", reason: "TARGET_MATCH" });
    expect(after.decisions["home-hero"]?.content.html).toContain("The trail is calling");
    expect(after.segments).toContain("hiker");
    expect(after.intent.top).toBe("hiking");
    expect(after.rulesVersion).toBe("2026.11.24-1");
    // The cart the call just reported is the cart the email shows (the journeys' cart reminder).
    expect(after.decisions["email-hero"]?.experience).toBe("email-cart");
    expect(after.decisions["email-hero"]?.content.json).toEqual({
      headline: "You left something in your cart, friend",
      cta: "/cart",
    });
  });

  it("segments are listed by default, and a caller that does not need them asks for none and gets the same decisions", async () => {
    const userId = `segments-${Date.now()}`;
    const events = [
      { id: eid(), type: "product_view", channel: "app", props: { category: "hiking" } },
      { id: eid(), type: "add_to_cart", channel: "app", props: { category: "hiking" } },
    ];
    const listed = await client.decide({ userId, channel: "app", placements: ["home-hero"], events });
    expect(listed.segments).toContain("hiker");
    const unlisted = await client.decide({
      userId,
      channel: "app",
      placements: ["home-hero"],
      segments: false,
    });
    expect(unlisted.segments).toEqual([]);
    expect(unlisted.decisions["home-hero"]).toMatchObject({
      experience: "hero-hiker",
      reason: "TARGET_MATCH",
    });
    expect(unlisted.decisions).toEqual(listed.decisions);
  });

  it("the web and the app agree for the same visitor", async () => {
    const cookie = await newVisitor();
    await sendEvents(cookie, [
      { id: eid(), type: "product_view", props: { category: "running" } },
      { id: eid(), type: "product_view", props: { category: "running" } },
    ]);
    const web = await (await visit("/", { cookie })).text();
    const app = await client.decide({ visitorId: idOf(cookie), channel: "app", placements: ["home-hero"] });
    expect(app.decisions["home-hero"]?.experience).toBe("hero-runner");
    expect(web).toContain(app.decisions["home-hero"]!.content.html!);
  });

  it("an outbound sender asks which channel and when", async () => {
    const userId = `sms-fan-${Date.now()}`;
    await client.track({ userId }, [
      { id: eid(), type: "email_send", channel: "email", props: {} },
      { id: eid(), type: "email_send", channel: "email", props: {} },
      { id: eid(), type: "sms_send", channel: "sms", props: {} },
      { id: eid(), type: "sms_click", channel: "sms", props: {} },
      { id: eid(), type: "sms_click", channel: "sms", props: {} },
    ]);
    const r = await client.decide({ userId, channel: "sms", placements: ["email-hero"] });
    expect(r.outbound?.channel).toBe("sms");
  });

  describe("the send hour is in the person's time zone", () => {
    // Tokyo keeps no summer time, so the expected hour does not move if a test runs across a change.
    const HOUR = 3600e3;
    const tokyoHour = (ts: number) =>
      Number(
        new Intl.DateTimeFormat("en-US", {
          timeZone: "Asia/Tokyo",
          hour: "numeric",
          hourCycle: "h23",
        }).format(ts),
      );
    /** Opens and a click at 20:10, 20:25 and 20:40 Tokyo time, within the last day. */
    function eveningInTokyo() {
      let eight = Math.floor(Date.now() / HOUR) * HOUR - 24 * HOUR;
      while (tokyoHour(eight) !== 20) eight += HOUR;
      return [10, 25, 40].map((minutes, i) => ({
        id: eid(),
        type: i === 1 ? "email_click" : "email_open",
        channel: "email",
        ts: eight + minutes * 60e3,
        props: {},
      }));
    }
    /** A sender's server in Chicago: Cloudflare's zone for its calls is its own, not the person's. */
    const fromChicago = new NorthstarClient({
      baseUrl: "https://shop.test",
      apiKey: SERVER.authorization.slice("Bearer ".length),
      fetch: (input, init) =>
        exports.default.fetch(new Request(input, { ...init, cf: { timezone: "America/Chicago" } })),
    });

    it("a sender that states the person's zone gets the hour in that zone, and the zone named", async () => {
      const userId = `tokyo-evening-${eid()}`;
      await client.track({ userId }, eveningInTokyo());
      const r = await client.decide({
        userId,
        channel: "email",
        context: { timezone: "Asia/Tokyo" },
        placements: ["email-hero"],
      });
      expect(r.outbound).toEqual({
        channel: "email",
        hour: 20,
        timezone: "Asia/Tokyo",
        timezoneSource: "request",
      });
    });

    it("without a stated zone, the person's timezone trait counts, not the sending server's zone", async () => {
      const userId = `tokyo-trait-${eid()}`;
      await admin.setTraits(`user:${userId}`, { timezone: "Asia/Tokyo" });
      await client.track({ userId }, eveningInTokyo());
      const r = await fromChicago.decide({ userId, channel: "email", placements: ["email-hero"] });
      expect(r.outbound).toMatchObject({ hour: 20, timezone: "Asia/Tokyo", timezoneSource: "trait" });
    });
  });

  it("bad input is a 400 naming each field; unknown placements are named, not a 500", async () => {
    const res = await visit("/_ns/v1/decide", {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/json" },
      body: JSON.stringify({ userId: "x", channel: "Not A Channel", placements: "home-hero" }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; issues: Array<{ path: string }> };
    expect(body.error).toBe("invalid_request");
    expect(body.issues.map((i) => i.path).sort()).toEqual(["channel", "placements"]);
    const unknown = await client.decide({ userId: "x", placements: ["home-hero", "no-such-slot"] });
    expect(unknown.unknownPlacements).toEqual(["no-such-slot"]);
    await expect(client.decide({ visitorId: "../bad" })).rejects.toBeInstanceOf(NorthstarError);
  });

  it("an assignment to a variant the experiment no longer has is replaced by a current one, and stored", async () => {
    const userId = `renamed-variant-${Date.now()}`;
    const stub = visitorObject(env, await canonicalForUser(userId));
    // As if hero-test had a variant "gone" when this person was bucketed, since removed.
    await stub.recordDecision({ now: Date.now(), exposures: [], assignments: { "hero-test": "gone" } });
    // The write happens after the answer (waitUntil): the settled call returns once it is done.
    const hero = (await settledClient.decide({ userId, placements: ["home-hero"] })).decisions["home-hero"]!;
    if (hero.reason === "EXPERIMENT") expect(hero.content.html).toMatch(/Gear for every trail|Go further/);
    else expect(hero).toMatchObject({ reason: "HOLDOUT", experience: null });
    const stored = (await stub.snapshot({ now: Date.now() })).assignments["hero-test"];
    expect(stored).toBe(hero.variant ?? "holdout");
    const again = (await client.decide({ userId, placements: ["home-hero"] })).decisions["home-hero"]!;
    expect(again.variant).toBe(hero.variant);
  });

  it("without the server key a caller only gets decisions for its own cookie", async () => {
    const res = await visit("/_ns/v1/decide", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: "someone" }),
    });
    expect(res.status).toBe(403);
    const cookie = await newVisitor();
    const own = await visit("/_ns/v1/decide", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ channel: "web", placements: ["home-hero"] }),
    });
    expect(own.status).toBe(200);
    expect(((await own.json()) as { visitorId: string }).visitorId).toBe(idOf(cookie));
  });
});

describe("explanations through POST /_ns/v1/decide", () => {
  const ask = (init: { cookie?: string; headers?: Record<string, string> }, body: Record<string, unknown>) =>
    visit("/_ns/v1/decide", {
      method: "POST",
      ...init,
      headers: { "content-type": "application/json", ...init.headers },
      body: JSON.stringify({
        channel: "web",
        placements: ["home-hero", "promo-banner"],
        explain: true,
        ...body,
      }),
    });

  it("a browser asking with its cookie gets its decisions but never the explanation", async () => {
    const cookie = await newVisitor();
    const res = await ask({ cookie }, {});
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown> & { decisions: Record<string, unknown> };
    expect(Object.keys(body.decisions)).toEqual(["home-hero", "promo-banner"]);
    expect(body).not.toHaveProperty("explanation");
  });

  it("a server caller, or an admin, gets every candidate and why", async () => {
    const cookie = await newVisitor();
    for (const headers of [SERVER, ADMIN]) {
      const res = await ask({ headers }, { visitorId: idOf(cookie) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as DecideResponse;
      const hero = body.explanation?.["home-hero"] ?? [];
      expect(hero.find((c) => c.experience === "hero-runner")).toMatchObject({
        outcome: "audience",
        ruleIndex: 0,
      });
      // The decision and its winning candidate point at the same rule of the file.
      const decided = body.decisions["home-hero"]!;
      const winner = hero.find((c) => c.outcome === "won");
      expect(decided.ruleIndex).toBe(winner ? winner.ruleIndex : null);
      expect(decided.ruleIndex === null ? "HOLDOUT" : "EXPERIMENT").toBe(decided.reason);
    }
  });
});

describe("fail open", () => {
  const broken = () => Promise.reject(new Error("store exploded"));
  const brokenVisitor = {
    idFromName: (name: string) => env.VISITOR.idFromName(name),
    get: () => ({ snapshot: broken, ingest: broken, recordDecision: broken }),
  } as unknown as typeof env.VISITOR;
  const brokenProfiles = { get: broken, put: broken, delete: broken } as unknown as typeof env.PROFILES;

  /** An email sender's call, with one binding swapped for a broken one. */
  async function decideWith(
    faults: Partial<typeof env>,
    subject: { userId: string } | { visitorId: string },
  ) {
    const ctx = createExecutionContext();
    const res = await handle(
      new Request("https://shop.test/_ns/v1/decide", {
        method: "POST",
        headers: { ...SERVER, "content-type": "application/json" },
        body: JSON.stringify({
          ...subject,
          channel: "email",
          placements: ["email-hero", "promo-banner"],
          events: [{ id: eid(), type: "product_view", props: { category: "running" } }],
        }),
      }),
      { ...env, ...faults },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    return { res, body: (await res.json()) as DecideResponse };
  }

  it("a visitor's object that fails: defaults, private, and the failure named in header and body", async () => {
    const { res, body } = await decideWith({ VISITOR: brokenVisitor }, { userId: `do-down-${Date.now()}` });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("private, no-store");
    expect(res.headers.get("x-northstar-fail-open")).toBe("do-error");
    expect(body.failOpen).toEqual(["do-error"]);
    expect(body.unknownPlacements).toEqual([]);
    expect(body.decisions["email-hero"]).toMatchObject({
      experience: null,
      reason: "DEFAULT",
      content: { json: { headline: "Gear for every trail" } },
    });
  });

  it("a profile store that fails: decided as for someone not yet known, and said so", async () => {
    // A product view in the same call would make a runner (email-runner); unknown consent says no.
    for (const subject of [{ userId: `kv-down-${Date.now()}` }, { visitorId: `kvdown${Date.now()}abcdef` }]) {
      const { res, body } = await decideWith({ PROFILES: brokenProfiles }, subject);
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("private, no-store");
      expect(res.headers.get("x-northstar-fail-open")).toBe("kv-error");
      expect(body.failOpen).toEqual(["kv-error"]);
      expect(body.decisions["email-hero"]).toMatchObject({
        reason: "DEFAULT",
        content: { json: { headline: "Gear for every trail" } },
      });
    }
  });

  it("when every store answers, nothing is reported and the same call is personal", async () => {
    const { res, body } = await decideWith({}, { userId: `all-up-${Date.now()}` });
    expect(res.headers.get("x-northstar-fail-open")).toBeNull();
    expect(body.failOpen).toEqual([]);
    expect(body.decisions["email-hero"]?.experience).toBe("email-runner");
  });
});

describe("admin views", () => {
  it("explain shows every candidate and why it won or lost", async () => {
    const cookie = await newVisitor();
    const res = await visit(
      `/_ns/v1/explain?visitorId=${idOf(cookie)}&url=${encodeURIComponent("https://shop.test/")}`,
      { headers: ADMIN },
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      explanation: Record<string, Array<{ experience: string; outcome: string; detail: string | null }>>;
    };
    const hero = body.explanation["home-hero"]!;
    expect(hero.find((c) => c.experience === "hero-runner")?.outcome).toBe("audience");
    expect((await visit(`/_ns/v1/explain?visitorId=${idOf(cookie)}`)).status).toBe(401);
    const bad = await visit("/_ns/v1/explain?visitorId=../../etc", { headers: ADMIN });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { issues: Array<{ path: string }> }).issues[0]?.path).toBe("visitorId");
  });

  it("explaining a person records nothing: no experiment assignment and no exposure kept", async () => {
    const userId = `explained-${crypto.randomUUID()}`;
    const url = encodeURIComponent("https://shop.test/");
    const res = await settled(
      new Request(`https://shop.test/_ns/v1/explain?userId=${userId}&url=${url}`, { headers: ADMIN }),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      decisions: Record<string, { variant: string | null; reason: string }>;
    };
    // The explanation did place them in the hero test (an arm, or its holdout); looking must not make it so.
    const hero = body.decisions["home-hero"];
    expect(hero?.variant === "control" || hero?.variant === "bold" || hero?.reason === "HOLDOUT").toBe(true);
    const stored = await visitorObject(env, await canonicalForUser(userId)).snapshot({
      now: Date.now(),
      eventsSince: 0,
    });
    expect(stored.assignments).toEqual({});
    expect(stored.exposures ?? {}).toEqual({});
  });

  it("experiment results: unique exposures and conversions per arm, with honest statistics", async () => {
    type Counts = { exposures: number; conversions: number };
    /** Each arm's counts (the holdout's included) as the admin report gives them. */
    async function report() {
      const res = await visit("/_ns/v1/experiments/hero-test", { headers: ADMIN });
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        holdout: Counts | null;
        report: {
          arms: Array<Counts & { id: string; verdict: string }>;
          enoughData: boolean;
          note: string;
        };
      };
      const arms = new Map<string, Counts>(body.report.arms.map((a) => [a.id, a]));
      arms.set("holdout", body.holdout ?? { exposures: 0, conversions: 0 });
      return { arms, report: body.report };
    }
    const page = (cookie?: string) =>
      settled(
        new Request("https://shop.test/", {
          headers: { "user-agent": BROWSER_UA, ...(cookie ? { cookie } : {}) },
        }),
      );
    /** The arm a visitor was shown, read from the hero on their page. */
    const armShown = (html: string) =>
      html.includes("Gear for every trail")
        ? "control"
        : html.includes("Go further this weekend")
          ? "bold"
          : "holdout";
    const addToCart = (cookie: string) =>
      settled(
        new Request("https://shop.test/_ns/v1/events", {
          method: "POST",
          headers: { "user-agent": BROWSER_UA, cookie, "content-type": "text/plain;charset=UTF-8" },
          body: JSON.stringify({
            sentAt: Date.now(),
            events: [{ id: eid(), type: "add_to_cart", props: { category: "running" } }],
          }),
        }),
      );

    const before = (await report()).arms;
    const visitors: Array<{ cookie: string; arm: string }> = [];
    for (let i = 0; i < 6; i++) {
      const first = await page();
      const cookie = visitorCookie(first);
      const arm = armShown(await first.text());
      // The same visitor again: still one exposure, in the same arm.
      expect(armShown(await (await page(cookie)).text())).toBe(arm);
      visitors.push({ cookie, arm });
    }
    // The goal reached twice by one visitor: one conversion, in that visitor's arm.
    const converter = visitors[0]!;
    for (let i = 0; i < 2; i++) expect((await addToCart(converter.cookie)).status).toBe(202);

    const after = await report();
    for (const arm of ["control", "bold", "holdout"]) {
      const was = before.get(arm)!;
      const now = after.arms.get(arm)!;
      expect({
        arm,
        exposures: now.exposures - was.exposures,
        conversions: now.conversions - was.conversions,
      }).toEqual({
        arm,
        exposures: visitors.filter((v) => v.arm === arm).length,
        conversions: converter.arm === arm ? 1 : 0,
      });
    }
    // A handful of visitors is no evidence: no verdict for any arm, and the report says why.
    expect(after.report.enoughData).toBe(false);
    expect(after.report.note).toContain("not enough data");
    expect(after.report.arms.find((a) => a.id === "bold")?.verdict).toBe("not enough data");
    expect((await visit("/_ns/v1/experiments/nope", { headers: ADMIN })).status).toBe(404);
  });

  it("the OpenAPI document describes the routes from the same schemas", async () => {
    const doc = (await (await visit("/_ns/openapi.json")).json()) as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          { requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> } }
        >
      >;
    };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/_ns/v1/decide", "/_ns/v1/events", "/_ns/v1/identify", "/_ns/v1/explain"]),
    );
    const decideBody = doc.paths["/_ns/v1/decide"]!.post!.requestBody!.content["application/json"]!.schema;
    expect(Object.keys(decideBody.properties ?? {})).toEqual(
      expect.arrayContaining(["visitorId", "userId", "channel", "placements", "events"]),
    );
    expect(Object.keys(doc.paths["/_ns/v1/events"]!.post!.requestBody!.content)).toContain("text/plain");
  });
});
