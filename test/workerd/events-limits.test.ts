// POST /_ns/v1/events through the worker's fetch handler, inside workerd: each limit's status,
// bodies whose size the headers misstate, timestamps, browsers vs servers, tampered cookies.
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { LIMITS } from "../../src/http/events.ts";
import { visitorObject } from "../../src/state/visitor-object.ts";
import { BROWSER_UA, eid, idOf, newVisitor, SERVER, visit } from "./helpers.ts";

type Accepted = {
  accepted: number;
  duplicates: number;
  stored: number;
  rejected: Array<{ index: number; issues: Array<{ path: string; message: string }> }>;
};

/** A body sent in chunks with no Content-Length (chunked transfer), `total` bytes of JSON. */
function chunkedBody(prefix: string, padBytes: number, suffix: string): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let sent = 0;
  let stage = 0;
  return new ReadableStream({
    pull(controller) {
      if (stage === 0) {
        controller.enqueue(encoder.encode(prefix));
        stage = 1;
      } else if (stage === 1) {
        const n = Math.min(16 * 1024, padBytes - sent);
        controller.enqueue(encoder.encode("x".repeat(n)));
        sent += n;
        if (sent >= padBytes) stage = 2;
      } else {
        controller.enqueue(encoder.encode(suffix));
        controller.close();
      }
    },
  });
}

function post(body: BodyInit, headers: Record<string, string>, cookie?: string): Promise<Response> {
  return exports.default.fetch(
    new Request("https://shop.test/_ns/v1/events", {
      method: "POST",
      body,
      headers: { "user-agent": BROWSER_UA, ...(cookie ? { cookie } : {}), ...headers },
    }),
  );
}

const padded = (pad: number) => ({
  prefix: '{"events":[{"id":"big","type":"page_view","props":{"pad":"',
  pad,
  suffix: '"}}]}',
});

async function errorOf(res: Response): Promise<string> {
  expect(res.headers.get("content-type")).toContain("application/json");
  return ((await res.json()) as { error: string }).error;
}

describe("body limits, counted on the bytes read", () => {
  it("a chunked JSON batch over 500 KB is 413 (no Content-Length to trust)", async () => {
    const b = padded(LIMITS.batchBytes);
    const res = await post(chunkedBody(b.prefix, b.pad, b.suffix), {
      "content-type": "application/json",
    });
    expect(res.status).toBe(413);
    expect(await errorOf(res)).toBe("payload_too_large");
  });

  it("a chunked beacon over 64 KB is 413, while the same JSON batch is accepted", async () => {
    const cookie = await newVisitor();
    const b = padded(LIMITS.beaconBytes);
    const beacon = await post(
      chunkedBody(b.prefix, b.pad, b.suffix),
      { "content-type": "text/plain" },
      cookie,
    );
    expect(beacon.status).toBe(413);
    // As JSON (500 KB limit) the batch is read, and the one 64 KB event is over 32 KB: that event is rejected.
    const json = await post(
      chunkedBody(b.prefix, b.pad, b.suffix),
      { "content-type": "application/json" },
      cookie,
    );
    expect(json.status).toBe(202);
    const body = (await json.json()) as Accepted;
    expect(body.accepted).toBe(0);
    expect(body.rejected[0]!.issues[0]).toEqual({ path: "events.0", message: "event over 32 KB" });
  });

  it("a body longer than its declared Content-Length is still measured", async () => {
    const b = padded(LIMITS.batchBytes + 10);
    const res = await post(`${b.prefix}${"x".repeat(b.pad)}${b.suffix}`, {
      "content-type": "application/json",
      "content-length": "64",
    });
    expect(res.status).toBe(413);
  });

  it("one event over 32 KB is rejected by index; the rest of the batch is stored", async () => {
    const cookie = await newVisitor();
    const res = await visit("/_ns/v1/events", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        events: [
          { id: eid(), type: "page_view" },
          // Multi-byte characters: 11 000 × 3 bytes is over 32 KB though under 32 K characters.
          { id: eid(), type: "page_view", props: { note: "€".repeat(11_000) } },
          { id: eid(), type: "search", props: { q: "socks" } },
        ],
      }),
    });
    expect(res.status).toBe(202);
    const body = (await res.json()) as Accepted;
    expect(body.accepted).toBe(2);
    expect(body.rejected.map((r) => r.index)).toEqual([1]);
  });

  it("accepts exactly 100 events and nesting 10 deep; refuses 101 events and 11 deep", async () => {
    const cookie = await newVisitor();
    const events = (k: number) => Array.from({ length: k }, () => ({ id: eid(), type: "page_view" }));
    const send = (body: unknown) =>
      visit("/_ns/v1/events", {
        method: "POST",
        cookie,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await send({ events: events(100) })).status).toBe(202);
    const tooMany = await send({ events: events(101) });
    expect(tooMany.status).toBe(400);
    expect(await errorOf(tooMany)).toBe("invalid_request");

    // body(1) > events(2) > event(3) > props(4) > nest … : depth counts objects and arrays.
    const nest = (levels: number): unknown => (levels === 0 ? 1 : { a: nest(levels - 1) });
    expect((await send({ events: [{ id: eid(), type: "t", props: nest(7) }] })).status).toBe(202);
    const deep = await send({ events: [{ id: eid(), type: "t", props: nest(8) }] });
    expect(deep.status).toBe(400);
    expect(await errorOf(deep)).toBe("too_deep");
  });
});

describe("timestamps", () => {
  it("refuses events more than 5 minutes in the future or older than 7 days, after skew correction", async () => {
    const cookie = await newVisitor();
    const now = Date.now();
    const res = await visit("/_ns/v1/events", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        sentAt: now,
        events: [
          { id: eid(), type: "page_view", ts: now + 4 * 60e3 },
          { id: eid(), type: "page_view", ts: now + 6 * 60e3 },
          { id: eid(), type: "page_view", ts: now - 6 * 86400e3 },
          { id: eid(), type: "page_view", ts: now - 8 * 86400e3 },
        ],
      }),
    });
    const body = (await res.json()) as Accepted;
    expect(body.accepted).toBe(2);
    expect(body.rejected.map((r) => [r.index, r.issues[0]!.path])).toEqual([
      [1, "events.1.ts"],
      [3, "events.3.ts"],
    ]);
  });
});

describe("who may write", () => {
  it("a tampered cookie is a new visitor: a fresh signed cookie, nothing written to the forged id", async () => {
    const cookie = await newVisitor();
    const [name, value] = cookie.split("=") as [string, string];
    const [id, sig] = value.split(".") as [string, string];
    const forgedId = `${id.slice(0, -1)}${id.endsWith("A") ? "B" : "A"}`;
    for (const forged of [
      `${name}=${forgedId}.${sig}`,
      `${name}=${id}.${sig.slice(0, -2)}xx`,
      `${name}=${id}`,
    ]) {
      const res = await visit("/_ns/v1/events", {
        method: "POST",
        cookie: forged,
        headers: { "content-type": "text/plain" },
        body: JSON.stringify({ events: [{ id: eid(), type: "page_view" }] }),
      });
      expect(res.status).toBe(202);
      const set = res.headers.getSetCookie().find((c) => c.includes("ns_vid="));
      expect(set).toBeDefined();
      expect(idOf(set!.split(";")[0]!)).not.toBe(id);
      expect(set).toContain("HttpOnly");
      expect(set).toContain("SameSite=Lax");
      expect(set).toContain("Max-Age=34560000");
    }
    const forgedState = await visitorObject(env, forgedId).exportAll();
    expect(forgedState).toBeNull();
  });

  it("a browser may not name a userId; a server without a subject is 400; malformed ids are 400", async () => {
    const cookie = await newVisitor();
    const send = (body: unknown, headers: Record<string, string> = {}) =>
      visit("/_ns/v1/events", {
        method: "POST",
        cookie,
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    const events = [{ id: eid(), type: "page_view" }];
    expect((await send({ userId: "victim", events })).status).toBe(403);
    expect((await send({ events }, SERVER)).status).toBe(400);
    expect((await send({ visitorId: "short", events }, SERVER)).status).toBe(400);
    expect((await send({ visitorId: "u_NOTHEX00000000000000000000000000", events }, SERVER)).status).toBe(
      400,
    );
    // A wrong key is a browser: naming a visitor is then forbidden.
    expect(
      (await send({ visitorId: idOf(cookie), events }, { authorization: "Bearer wrong-key" })).status,
    ).toBe(403);
  });

  it("refuses constructor and prototype keys anywhere, with 400", async () => {
    const cookie = await newVisitor();
    for (const body of [
      '{"events":[{"id":"p1","type":"t","props":{"a":{"constructor":{"prototype":{}}}}}]}',
      '{"events":[{"id":"p2","type":"t","props":{"tags":[{"prototype":1}]}}]}',
      '{"__proto__":{"polluted":true},"events":[{"id":"p3","type":"t"}]}',
    ]) {
      const res = await visit("/_ns/v1/events", {
        method: "POST",
        cookie,
        headers: { "content-type": "application/json" },
        body,
      });
      expect(res.status).toBe(400);
      expect(await errorOf(res)).toBe("forbidden_key");
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("custom event types must be snake_case; server events keep their channel", async () => {
    const res = await visit("/_ns/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json", ...SERVER },
      body: JSON.stringify({
        userId: `pos-${eid()}`,
        events: [
          { id: eid(), type: "store_visit", channel: "pos", props: { storeId: "paris-1" } },
          { id: eid(), type: "StoreVisit" },
          { id: eid(), type: `a${"b".repeat(64)}` },
        ],
      }),
    });
    const body = (await res.json()) as Accepted;
    expect(body.accepted).toBe(1);
    expect(body.rejected.map((r) => r.issues[0]!.path)).toEqual(["events.1.type", "events.2.type"]);
  });
});
