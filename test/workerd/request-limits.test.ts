// Every route that reads a body or an id reads it the same way (src/http/request.ts): the same
// limits, the same event checks and the same ids on decide as on events; ids that name no own
// experiment are 404; the preview link reads a small body and names only this site's paths.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { handle } from "../../src/http/app.ts";
import { canonicalForUser } from "../../src/state/visitor-id.ts";
import { visitorObject } from "../../src/state/visitor-object.ts";
import { ADMIN, eid, newVisitor, SERVER, visit } from "./helpers.ts";

type ErrorBody = { error: string; message?: string; issues?: Array<{ path: string; message: string }> };

const json = { "content-type": "application/json" };

function decide(body: string): Promise<Response> {
  return visit("/_ns/v1/decide", { method: "POST", headers: { ...SERVER, ...json }, body });
}

function events(body: string, cookie?: string): Promise<Response> {
  return visit("/_ns/v1/events", {
    method: "POST",
    headers: cookie ? json : { ...SERVER, ...json },
    body,
    ...(cookie ? { cookie } : {}),
  });
}

async function errorOf(res: Response): Promise<ErrorBody> {
  expect(res.headers.get("content-type")).toContain("application/json");
  return (await res.json()) as ErrorBody;
}

/** `levels` objects nested under key "a", around `inner` (JSON text, so `__proto__` stays a key). */
const nested = (levels: number, inner: string) => `${'{"a":'.repeat(levels)}${inner}${"}".repeat(levels)}`;

/**
 * An event whose props hold `__proto__` in the 23rd object from the top of the body: body (1),
 * events (2), the event (3), props (4), 18 more levels of "a" (5–22), and the object holding it.
 */
const protoAt23 = (id: string) =>
  `{"id":"${id}","type":"page_view","props":${nested(19, '{"__proto__":{"polluted":true}}')}}`;
const protoPath = `events.0.props${".a".repeat(19)}.__proto__`;

describe("one JSON check for every body", () => {
  it("decide refuses props nested 2,000 deep with 400 too_deep, naming where", async () => {
    const userId = `deep-${eid()}`;
    const res = await decide(
      `{"userId":"${userId}","events":[{"id":"${eid()}","type":"page_view","props":${nested(2000, "1")}}]}`,
    );
    expect(res.status).toBe(400);
    const body = await errorOf(res);
    expect(body.error).toBe("too_deep");
    expect(body.issues?.[0]?.path).toMatch(/^events\.0\.props(\.a)+$/);
    expect(await visitorObject(env, await canonicalForUser(userId)).exportAll()).toBeNull();
  });

  it("decide refuses __proto__ 23 levels deep with 400 forbidden_key, and stores nothing", async () => {
    const userId = `proto-${eid()}`;
    const res = await decide(`{"userId":"${userId}","events":[${protoAt23(eid())}]}`);
    expect(res.status).toBe(400);
    const body = await errorOf(res);
    expect(body.error).toBe("forbidden_key");
    expect(body.issues).toEqual([{ path: protoPath, message: expect.any(String) }]);
    expect(await visitorObject(env, await canonicalForUser(userId)).exportAll()).toBeNull();
  });

  it("events refuses __proto__ 23 levels deep with 400 forbidden_key, as decide does", async () => {
    const cookie = await newVisitor();
    const res = await events(`{"events":[${protoAt23(eid())}]}`, cookie);
    expect(res.status).toBe(400);
    const body = await errorOf(res);
    expect(body.error).toBe("forbidden_key");
    expect(body.issues?.[0]?.path).toBe(protoPath);
  });
});

describe("one event check for events and decide", () => {
  it("decide measures an event in UTF-8 bytes: 20,000 é (40 KB, 20 K characters) is 400 naming events.0", async () => {
    const event = { id: eid(), type: "page_view", props: { note: "é".repeat(20_000) } };
    const res = await decide(JSON.stringify({ userId: `utf8-${eid()}`, events: [event] }));
    expect(res.status).toBe(400);
    const body = await errorOf(res);
    expect(body.error).toBe("invalid_request");
    expect(body.issues).toEqual([{ path: "events.0", message: "event over 32 KB" }]);
  });

  it("decide refuses an event outside the time window with the path and message events gives", async () => {
    const now = Date.now();
    const bad = { id: eid(), type: "page_view", ts: now + 10 * 60e3 };
    const viaDecide = await errorOf(await decide(JSON.stringify({ userId: `late-${eid()}`, events: [bad] })));
    const viaEvents = (await (
      await events(JSON.stringify({ userId: `late-${eid()}`, events: [bad] }))
    ).json()) as { rejected: Array<{ index: number; issues: ErrorBody["issues"] }> };
    expect(viaDecide.issues).toEqual(viaEvents.rejected[0]!.issues);
    expect(viaDecide.issues).toEqual([{ path: "events.0.ts", message: "more than 5 minutes in the future" }]);
  });

  it("decide corrects event times by the sender's clock skew (sentAt), as events does", async () => {
    const userId = `skew-${eid()}`;
    const before = Date.now();
    // The sender's clock is an hour behind; its event happened a second before it sent the call.
    const sentAt = before - 3600e3;
    const res = await decide(
      JSON.stringify({ userId, sentAt, events: [{ id: eid(), type: "page_view", ts: sentAt - 1000 }] }),
    );
    const after = Date.now();
    expect(res.status).toBe(200);
    const dump = await visitorObject(env, await canonicalForUser(userId)).exportAll();
    const ts = dump!.state.events[0]!.ts;
    expect(ts).toBeGreaterThanOrEqual(before - 1000);
    expect(ts).toBeLessThanOrEqual(after - 1000);
  });

  it("u_ZZZZZZZZZZZZZZZZ is not a visitor id on decide, nor on events: the same 400", async () => {
    const visitorId = "u_ZZZZZZZZZZZZZZZZ";
    const viaDecide = await decide(JSON.stringify({ visitorId }));
    const viaEvents = await events(JSON.stringify({ visitorId, events: [{ id: eid(), type: "page_view" }] }));
    expect([viaDecide.status, viaEvents.status]).toEqual([400, 400]);
    const [a, b] = [await errorOf(viaDecide), await errorOf(viaEvents)];
    expect(a).toEqual(b);
    expect(a.issues).toEqual([{ path: "visitorId", message: "not a Northstar visitor id" }]);
  });
});

describe("experiment ids", () => {
  it("a name every object inherits is no experiment: 404 JSON, never 500", async () => {
    for (const name of ["constructor", "toString", "hasOwnProperty", "valueOf", "__proto__"]) {
      const res = await visit(`/_ns/v1/experiments/${name}`, { headers: ADMIN });
      expect(res.status, name).toBe(404);
      expect((await errorOf(res)).error, name).toBe("unknown_experiment");
    }
  });
});

describe("preview links", () => {
  it("a 1 MB body is 413, and the rest of it is cancelled, not read", async () => {
    const chunk = new TextEncoder().encode(" ".repeat(16 * 1024));
    let sent = 0;
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 1024 * 1024) return controller.close();
        controller.enqueue(chunk);
        sent += chunk.byteLength;
      },
      cancel() {
        cancelled = true;
      },
    });
    const ctx = createExecutionContext();
    const res = await handle(
      new Request("https://shop.test/_ns/v1/preview", {
        method: "POST",
        headers: { ...ADMIN, ...json },
        body,
      }),
      env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(413);
    expect((await errorOf(res)).error).toBe("payload_too_large");
    expect(cancelled).toBe(true);
    expect(sent).toBeLessThan(1024 * 1024);
  });

  it("a path that is not on this site is 400 naming path; a site path gets a link to this host", async () => {
    for (const path of [
      "//evil.example/x",
      "/\\evil.example/x",
      "/\t/evil.example/x",
      "https://evil.example/",
    ]) {
      const res = await visit("/_ns/v1/preview", {
        method: "POST",
        headers: { ...ADMIN, ...json },
        body: JSON.stringify({ path }),
      });
      expect(res.status, path).toBe(400);
      expect(
        (await errorOf(res)).issues?.map((i) => i.path),
        path,
      ).toEqual(["path"]);
    }
    const ok = await visit("/_ns/v1/preview", {
      method: "POST",
      headers: { ...ADMIN, ...json },
      body: JSON.stringify({ path: "/running" }),
    });
    expect(ok.status).toBe(200);
    const url = new URL(((await ok.json()) as { url: string }).url);
    expect([url.host, url.pathname]).toEqual(["shop.test", "/running"]);
  });
});
