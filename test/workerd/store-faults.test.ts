import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { handle } from "../../src/http/app.ts";
import type { Env } from "../../src/platform/env.ts";
import { ADMIN, BROWSER_UA, eid, idOf, newVisitor, SERVER, visit } from "./helpers.ts";

// Every route's store calls have deadlines (issue 12, item 5). A hanging store here is a promise that
// never settles: a test that gets an answer at all proves the deadline, so no test measures time.
// Writes that no store took answer 503 store_unavailable with Retry-After, never a hang or a bare
// 500; reads answer what they could and name what failed.

type Fault = "hang" | "throw";

const failing = (fault: Fault): Promise<never> =>
  fault === "hang" ? new Promise<never>(() => {}) : Promise.reject(new Error("store unavailable"));

/** A KV namespace every call of which hangs or throws. */
function faultyKv(fault: Fault): KVNamespace {
  const call = () => failing(fault);
  return { get: call, getWithMetadata: call, put: call, delete: call, list: call } as unknown as KVNamespace;
}

/** A Durable Object namespace whose objects hang or throw on every method. */
function faultyObjects(real: { idFromName(name: string): DurableObjectId }, fault: Fault): unknown {
  // Not thenable: the stub itself is returned, never awaited.
  const stub = new Proxy({}, { get: (_t, name) => (name === "then" ? undefined : () => failing(fault)) });
  return { idFromName: (name: string) => real.idFromName(name), get: () => stub };
}

const faults = {
  kv: (fault: Fault) => ({ PROFILES: faultyKv(fault) }),
  visitor: (fault: Fault) => ({ VISITOR: faultyObjects(env.VISITOR, fault) }),
  experiments: (fault: Fault) => ({ EXPERIMENTS: faultyObjects(env.EXPERIMENTS, fault) }),
};

/** A request to the worker with some bindings replaced; a 5 ms store deadline keeps the waits short. */
async function call(path: string, init: RequestInit, replaced: Record<string, unknown>) {
  const headers = new Headers(init.headers);
  headers.set("user-agent", BROWSER_UA);
  const res = await handle(
    new Request(`https://shop.test/_ns${path}`, { ...init, headers }),
    { ...env, STORE_DEADLINE_MS: "5", ...replaced } as Env,
    createExecutionContext(),
  );
  return { res, body: (await res.json()) as Record<string, unknown> };
}

function expectUnavailable({ res, body }: Awaited<ReturnType<typeof call>>) {
  expect(res.status).toBe(503);
  expect(body.error).toBe("store_unavailable");
  expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
  expect(res.headers.get("cache-control")).toBe("no-store");
}

const json = (body: unknown, extra: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...extra },
  body: JSON.stringify(body),
});

const user = () => `faults-${crypto.randomUUID()}`;

beforeEach(() => {
  vi.spyOn(console, "log").mockImplementation(() => {});
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe.each(["hang", "throw"] as const)("a store that fails (%s)", (fault) => {
  it("POST /v1/events (server, JSON): the visitor's object failing answers 503, nothing acknowledged", async () => {
    const events = [{ id: eid(), type: "page_view", props: { path: "/" } }];
    expectUnavailable(
      await call("/v1/events", json({ userId: user(), events }, SERVER), faults.visitor(fault)),
    );
  });

  it("POST /v1/events (text/plain beacon): the visitor's object failing answers 503", async () => {
    const cookie = await newVisitor();
    const init: RequestInit = {
      method: "POST",
      headers: { "content-type": "text/plain;charset=UTF-8", cookie },
      body: JSON.stringify({ sentAt: Date.now(), events: [{ id: eid(), type: "page_view" }] }),
    };
    expectUnavailable(await call("/v1/events", init, faults.visitor(fault)));
  });

  it("POST /v1/events with KV failing: stored all the same (202), as the export then shows", async () => {
    const cookie = await newVisitor();
    const id = eid();
    const init: RequestInit = {
      method: "POST",
      headers: { "content-type": "text/plain;charset=UTF-8", cookie },
      body: JSON.stringify({ sentAt: Date.now(), events: [{ id, type: "page_view" }] }),
    };
    const { res, body } = await call("/v1/events", init, faults.kv(fault));
    expect(res.status).toBe(202);
    expect(body).toMatchObject({ accepted: 1, stored: 1 });
    const exported = await visit(`/_ns/v1/profiles/${idOf(cookie)}`, { headers: ADMIN });
    const state = ((await exported.json()) as { state: { events: Array<{ id: string }> } }).state;
    expect(state.events.map((e) => e.id)).toContain(id);
  });

  it("POST /v1/consent: the visitor's object failing, or KV failing, answers 503", async () => {
    const cookie = await newVisitor();
    const body = { purposes: { personalization: false } };
    expectUnavailable(await call("/v1/consent", json(body, { cookie }), faults.visitor(fault)));
    expectUnavailable(await call("/v1/consent", json(body, { cookie }), faults.kv(fault)));
  });

  it("POST /v1/identify (server): KV failing, or the objects failing, answers 503", async () => {
    const anonymousId = idOf(await newVisitor());
    const body = { userId: user(), anonymousId };
    expectUnavailable(await call("/v1/identify", json(body, SERVER), faults.kv(fault)));
    expectUnavailable(await call("/v1/identify", json(body, SERVER), faults.visitor(fault)));
  });

  it("GET /v1/profiles/:id: answers the part it could read and names the store that failed; 503 when none", async () => {
    const person = user();
    const traits = await visit(`/_ns/v1/profiles/user:${person}/traits`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ tier: "gold" }),
    });
    expect(traits.status).toBe(200);
    const id = eid();
    const stored = await visit(
      "/_ns/v1/events",
      json({ userId: person, events: [{ id, type: "page_view" }] }, SERVER),
    );
    expect(stored.status).toBe(202);

    const withoutObject = await call(
      `/v1/profiles/user:${person}`,
      { headers: ADMIN },
      faults.visitor(fault),
    );
    expect(withoutObject.res.status).toBe(200);
    expect(withoutObject.body).toMatchObject({
      traits: { tier: "gold" },
      state: null,
      failOpen: [`do-${fault === "hang" ? "timeout" : "error"}`],
    });
    expect(withoutObject.res.headers.get("x-northstar-fail-open")).toBe(
      `do-${fault === "hang" ? "timeout" : "error"}`,
    );

    const withoutKv = await call(`/v1/profiles/user:${person}`, { headers: ADMIN }, faults.kv(fault));
    expect(withoutKv.res.status).toBe(200);
    expect(withoutKv.body).toMatchObject({
      traits: {},
      failOpen: [`kv-${fault === "hang" ? "timeout" : "error"}`],
    });
    const events = (withoutKv.body.state as { events: Array<{ id: string }> }).events;
    expect(events.map((e) => e.id)).toContain(id);

    const neither = await call(
      `/v1/profiles/user:${person}`,
      { headers: ADMIN },
      { ...faults.kv(fault), ...faults.visitor(fault) },
    );
    expectUnavailable(neither);
  });

  it("PUT /v1/profiles/:id/traits, the import and the erasure: KV failing answers 503", async () => {
    const traits: RequestInit = {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ tier: "gold" }),
    };
    expectUnavailable(await call(`/v1/profiles/user:${user()}/traits`, traits, faults.kv(fault)));
    const ndjson: RequestInit = {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/x-ndjson" },
      body: `${JSON.stringify({ id: `user:${user()}`, traits: { tier: "gold" } })}\n`,
    };
    expectUnavailable(await call("/v1/profiles/import", ndjson, faults.kv(fault)));
    expectUnavailable(
      await call(`/v1/profiles/user:${user()}`, { method: "DELETE", headers: ADMIN }, faults.kv(fault)),
    );
  });

  it("POST /v1/events/import: the visitors' objects failing answers 503, nothing acknowledged", async () => {
    const line = (id: string) =>
      JSON.stringify({ id: `user:${user()}`, event: { id, type: "email_open", ts: Date.now() - 86400e3 } });
    const backfill: RequestInit = {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/x-ndjson" },
      body: `${line("a")}\n${line("b")}\n`,
    };
    expectUnavailable(await call("/v1/events/import", backfill, faults.visitor(fault)));
  });

  it("GET /v1/experiments/:id: the experiment's object failing answers 503", async () => {
    expectUnavailable(await call("/v1/experiments/hero-test", { headers: ADMIN }, faults.experiments(fault)));
  });
});
