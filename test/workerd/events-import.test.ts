// POST /_ns/v1/events/import, the server-side backfill of older history, through the worker with
// real Durable Objects and KV. Time is simulated: Date is faked, and live events are sent at the
// moment they happen. The bundled rules score (running +4 a product view, +8 a cart; cap 100).

import { createExecutionContext, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { decide } from "../../src/core/decide.ts";
import type { VisitorEvent, VisitorState } from "../../src/core/model.ts";
import { handle } from "../../src/http/app.ts";
import { type EventImportResponse, EventImportResponseSchema } from "../../src/http/backfill.ts";
import type { Env } from "../../src/platform/env.ts";
import { compileRules, hashRules, parseRules } from "../../src/rules/index.ts";
import { activeRules } from "../../src/state/rules-loader.ts";
import { VisitorDO } from "../../src/state/visitor-do.ts";
import { ADMIN, SERVER, visit } from "./helpers.ts";

const MIN = 60e3;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

afterEach(() => {
  vi.useRealTimers();
});

let n = 0;
const person = () => `backfill-${Date.now().toString(36)}-${++n}`;

type Line = { id: string; event: Record<string, unknown> };
const ndjson = (lines: readonly unknown[]) => lines.map((line) => JSON.stringify(line)).join("\n");

function importEvents(lines: readonly unknown[] | string, headers: Record<string, string> = SERVER) {
  return visit("/_ns/v1/events/import", {
    method: "POST",
    headers: { "content-type": "application/x-ndjson", ...headers },
    body: typeof lines === "string" ? lines : ndjson(lines),
  });
}

async function imported(lines: readonly unknown[], headers: Record<string, string> = SERVER) {
  const res = await importEvents(lines, headers);
  expect(res.status).toBe(200);
  return (await res.json()) as EventImportResponse;
}

async function exported(id: string): Promise<VisitorState> {
  const res = await visit(`/_ns/v1/profiles/${id}`, { headers: ADMIN });
  expect(res.status).toBe(200);
  return ((await res.json()) as { state: VisitorState }).state;
}

/**
 * The segments the serving rules decide for a stored state (the decision API's `segments`, without
 * its store deadlines, which a loaded machine can miss and then answer from an empty history).
 */
async function segmentsOf(state: VisitorState): Promise<readonly string[]> {
  const rules = await activeRules(env as unknown as Env);
  return decide(rules!.compiled, {
    visitorId: "same-for-both",
    now: Date.now(),
    traits: {},
    state,
    context: { channel: "app", path: "/", query: {}, device: "unknown" } as never,
    consent: {},
  }).segments;
}

/** Three weeks of a runner: visits (two sessions a day), carts past the score's cap, emails, an order. */
function threeWeeks(now: number): Array<Omit<VisitorEvent, "channel"> & { channel: string }> {
  const events: Array<Omit<VisitorEvent, "channel"> & { channel: string }> = [];
  let k = 0;
  const add = (type: string, ts: number, props: Record<string, unknown> = {}, channel = "web") =>
    events.push({ id: `h-${++k}`, type, ts, channel, props });
  for (let day = 21; day >= 2; day -= 2) {
    const start = now - day * DAY;
    add("email_send", start - 2 * HOUR, {}, "email");
    if (day % 4 === 1) add("email_open", start - HOUR, {}, "email");
    add("page_view", start, { path: "/running" });
    add("product_view", start + 10 * MIN, { category: day % 6 === 1 ? "hiking" : "running" });
    add("page_view", start + 45 * MIN, { path: "/sale" });
  }
  for (let i = 0; i < 14; i++) add("add_to_cart", now - DAY + i * MIN, { category: "running" });
  add("purchase", now - DAY + 30 * MIN, { value: 120 });
  return events;
}

/** A fixed shuffle, so a failure is the same on every run. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const withoutId = ({ visitorId: _id, ...rest }: VisitorState) => rest;

describe("backfilling older history", () => {
  it("gives the state the same history gives sent live, though shuffled, in two batches, one sent twice", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const now = Date.now();
    const history = threeWeeks(now);
    const [liveUser, backfilledUser] = [person(), person()];
    for (const event of history) {
      vi.setSystemTime(event.ts);
      const res = await visit("/_ns/v1/events", {
        method: "POST",
        headers: { ...SERVER, "content-type": "application/json" },
        body: JSON.stringify({ userId: liveUser, sentAt: event.ts, events: [event] }),
      });
      expect(res.status).toBe(202);
    }
    vi.setSystemTime(now);
    const lines = shuffled(history, 11).map((event) => ({ id: `user:${backfilledUser}`, event }));
    const [first, second] = [lines.slice(0, 30), lines.slice(30)];
    expect(await imported(first)).toMatchObject({ accepted: 30, duplicates: 0, refused: 0 });
    expect(await imported(second)).toMatchObject({ accepted: second.length, duplicates: 0, refused: 0 });
    // The first file again: every line a duplicate, nothing changes.
    const again = await imported(first);
    expect(again).toMatchObject({ accepted: 0, duplicates: 30, refused: 0 });

    const live = await exported(`user:${liveUser}`);
    const backfilled = await exported(`user:${backfilledUser}`);
    expect(withoutId(backfilled)).toEqual(withoutId(live));
    // What that equality covers, named: the capped score, sessions, counters, engagement.
    expect(backfilled.intent.running!.value).toBe(100);
    expect(backfilled.sessionCount).toBe(live.sessionCount);
    expect(backfilled.sessionCount).toBeGreaterThan(10);
    expect(backfilled.engagement.email).toEqual(live.engagement.email);
    expect(backfilled.counts).toEqual(live.counts);
    const segments = await segmentsOf(backfilled);
    expect(segments).toEqual(await segmentsOf(live));
    expect(segments).toContain("runner");
  });

  it("answers each line per person: accepted, duplicate, or refused with why; lines naming nobody apart", async () => {
    const [ana, ben] = [person(), person()];
    const now = Date.now();
    const ok = (id: string, eventId: string, ago: number): Line => ({
      id,
      event: { id: eventId, type: "email_open", ts: now - ago, channel: "email" },
    });
    const body = [
      ndjson([ok(`user:${ana}`, "a1", 3 * DAY), ok(`user:${ben}`, "b1", 20 * DAY)]),
      "{not json",
      ndjson([
        ok(`user:${ana}`, "a1", 3 * DAY), // the same id again: a duplicate
        ok(`user:${ana}`, "a2", 31 * DAY), // beyond the 30 days the log keeps
        { id: `user:${ben}`, event: { id: "b2", type: "email_open" } }, // no time
        { id: `user:${ben}`, event: { id: "b3", type: "Bad Type", ts: now - DAY } },
        { id: "not an id!", event: { id: "x", type: "page_view", ts: now } },
        {
          id: `user:${ana}`,
          event: { id: "a3", type: "page_view", timestamp: new Date(now - 40 * HOUR).toISOString() },
        },
      ]),
    ].join("\n");
    const res = await importEvents(body);
    expect(res.status).toBe(200);
    // The answer is what the OpenAPI document and the client's types say it is.
    const report = EventImportResponseSchema.parse(await res.json());
    expect(report).toMatchObject({ accepted: 3, duplicates: 1, refused: 5 });
    expect(report.errors).toEqual([
      { line: 3, message: "not JSON" },
      { line: 8, message: "id is not a visitor id or user:<userId>" },
    ]);
    const [anaReport, benReport] = report.visitors;
    expect(anaReport).toMatchObject({ id: `user:${ana}`, accepted: [1, 9], duplicates: [4] });
    expect(anaReport!.visitorId).toMatch(/^u_/);
    expect(anaReport!.refused).toEqual([
      { line: 5, reason: "event.ts: older than the 30 days of history kept (EVENT_LOG_MAX_AGE_DAYS)" },
    ]);
    expect(benReport).toMatchObject({ accepted: [2], duplicates: [] });
    expect(benReport!.refused.map((r) => r.line)).toEqual([6, 7]);
    expect(benReport!.refused[0]!.reason).toMatch(/ts: required/);
    expect(benReport!.refused[1]!.reason).toMatch(/^event\.type: /);
    const held = await exported(`user:${ana}`);
    expect(held.events.map((e) => e.id).sort()).toEqual(["a1", "a3"]);
  });

  it("takes an event that already arrived live as a duplicate", async () => {
    const user = person();
    // add_to_cart: a type the bundled rules count (in 7 days), so its counter shows it counted once.
    const event = { id: "live-1", type: "add_to_cart", ts: Date.now() - HOUR, props: { value: 40 } };
    const live = await visit("/_ns/v1/events", {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/json" },
      body: JSON.stringify({ userId: user, events: [event] }),
    });
    expect(live.status).toBe(202);
    expect(await imported([{ id: `user:${user}`, event }])).toMatchObject({ accepted: 0, duplicates: 1 });
    expect((await exported(`user:${user}`)).counts.add_to_cart).toEqual([
      [Math.floor(event.ts / HOUR) * HOUR, 1],
    ]);
  });

  it("is for servers and admins: no credential or a wrong one is 401, the admin token works", async () => {
    const line = [{ id: `user:${person()}`, event: { id: "e", type: "page_view", ts: Date.now() } }];
    expect((await importEvents(line, {})).status).toBe(401);
    expect((await importEvents(line, { authorization: "Bearer wrong-key" })).status).toBe(401);
    expect(await imported(line, ADMIN)).toMatchObject({ accepted: 1 });
  });

  it("records nothing under GPC, nor for a person who withdrew consent, and says so per line", async () => {
    const [gpcUser, withdrawn] = [person(), person()];
    const line = (user: string, id: string) => ({
      id: `user:${user}`,
      event: { id, type: "email_open", ts: Date.now() - DAY, channel: "email" },
    });
    const underGpc = await imported([line(gpcUser, "g1")], { ...SERVER, "sec-gpc": "1" });
    expect(underGpc.accepted).toBe(0);
    expect(underGpc.visitors[0]!.refused).toEqual([
      { line: 1, reason: "not recorded: the request carries Sec-GPC: 1" },
    ]);
    expect((await visit(`/_ns/v1/profiles/user:${gpcUser}`, { headers: ADMIN })).status).toBe(404);

    const consent = await visit("/_ns/v1/consent", {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/json" },
      body: JSON.stringify({ userId: withdrawn, purposes: { personalization: false } }),
    });
    expect(consent.status).toBe(200);
    const refused = await imported([line(withdrawn, "w1")]);
    expect(refused.visitors[0]!.refused).toEqual([
      { line: 1, reason: "not recorded: this person has not consented to personalization" },
    ]);
    expect((await exported(`user:${withdrawn}`)).events).toEqual([]);
  });

  it("under CONSENT_MODE=opt-in records nothing for a person who has not granted personalization", async () => {
    const user = person();
    const res = await handle(
      new Request("https://shop.test/_ns/v1/events/import", {
        method: "POST",
        headers: SERVER,
        body: ndjson([{ id: `user:${user}`, event: { id: "o1", type: "email_open", ts: Date.now() - DAY } }]),
      }),
      { ...env, CONSENT_MODE: "opt-in" } as unknown as Env,
      createExecutionContext(),
    );
    const report = (await res.json()) as EventImportResponse;
    expect(report.visitors[0]!.refused).toEqual([
      { line: 1, reason: "not recorded: this person has not consented to personalization" },
    ]);
    expect((await visit(`/_ns/v1/profiles/user:${user}`, { headers: ADMIN })).status).toBe(404);
  });

  it("refuses an erased person's lines", async () => {
    const user = person();
    expect(
      await imported([{ id: `user:${user}`, event: { id: "e1", type: "page_view", ts: Date.now() } }]),
    ).toMatchObject({
      accepted: 1,
    });
    expect((await visit(`/_ns/v1/profiles/user:${user}`, { method: "DELETE", headers: ADMIN })).status).toBe(
      200,
    );
    const after = await imported([
      { id: `user:${user}`, event: { id: "e2", type: "page_view", ts: Date.now() } },
    ]);
    expect(after.visitors[0]!.refused).toEqual([
      { line: 1, reason: "suppressed: this person's data was erased" },
    ]);
  });
});

/** One request through the worker, returning once the work it left behind (waitUntil) is done. */
async function settled(path: string, init: RequestInit): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await handle(new Request(`https://shop.test${path}`, init), env, ctx);
  const body = await res.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return new Response(body, res);
}

describe("a backfilled conversion in an experiment", () => {
  it("counts as a live one would: not before the exposure, once after it", async () => {
    // A person the hero test exposes (10% are held out: the next person is tried then).
    let user = "";
    let exposedAt = 0;
    for (let attempt = 0; attempt < 20 && !exposedAt; attempt++) {
      user = person();
      const decided = await settled("/_ns/v1/decide", {
        method: "POST",
        headers: { ...SERVER, "content-type": "application/json" },
        body: JSON.stringify({ userId: user, channel: "app", placements: ["home-hero"] }),
      });
      expect(decided.status).toBe(200);
      const held = await visit(`/_ns/v1/profiles/user:${user}`, { headers: ADMIN });
      const rows = ((await held.json()) as { experiments: Array<{ experiment: string; exposedAt: number }> })
        .experiments;
      exposedAt = rows.find((row) => row.experiment === "hero-test")?.exposedAt ?? 0;
    }
    expect(exposedAt).toBeGreaterThan(0);
    const cart = (id: string, ts: number) => ({ id: `user:${user}`, event: { id, type: "add_to_cart", ts } });
    const converted = async () => {
      const res = await visit(`/_ns/v1/profiles/user:${user}`, { headers: ADMIN });
      const rows = (
        (await res.json()) as { experiments: Array<{ experiment: string; convertedAt: number | null }> }
      ).experiments;
      return rows.find((row) => row.experiment === "hero-test")?.convertedAt ?? null;
    };
    const importSettled = (lines: unknown[]) =>
      settled("/_ns/v1/events/import", { method: "POST", headers: SERVER, body: ndjson(lines) });
    // The goal (add_to_cart) reached the day before the exposure: not a result of the test.
    expect((await importSettled([cart("old-cart", exposedAt - DAY)])).status).toBe(200);
    expect(await converted()).toBeNull();
    // Reached after it: counted, at the time it happened.
    expect((await importSettled([cart("new-cart", exposedAt + 1000)])).status).toBe(200);
    expect(await converted()).toBe(exposedAt + 1000);
    // Another one later changes nothing: a person converts once.
    expect((await importSettled([cart("later-cart", exposedAt + 2000)])).status).toBe(200);
    expect(await converted()).toBe(exposedAt + 1000);
  });
});

describe("six months of email history, loaded by backfill", () => {
  it("lets 'no open in 180 days' read from behaviour, with a log that keeps 200 days", async () => {
    // The rules a marketer writes, and a deployment whose log keeps the 200 days they count.
    const parsed = parseRules({
      version: "six-months",
      settings: { historyDays: 200 },
      placements: { slot: { selector: "#slot" } },
      segments: {
        "no-open-6m": {
          condition: { countWithin: { event: "email_open", window: "180d" }, op: "eq", value: 0 },
        },
      },
      experiences: [{ id: "x", placement: "slot", content: { html: "hi" } }],
    });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const rules = compileRules(parsed.rules, await hashRules(parsed.rules));
    const now = Date.now();
    const segments = (state: VisitorState) =>
      decide(rules, {
        visitorId: state.visitorId,
        now,
        traits: {},
        state,
        context: { channel: "email", path: "/", query: {}, device: "unknown" } as never,
        consent: {},
      }).segments;
    const deployed = { ...env, EVENT_LOG_MAX_AGE_DAYS: "200" } as unknown as Env;
    const mail = (id: string, type: string, ago: number): VisitorEvent => ({
      id,
      type,
      ts: now - ago,
      channel: "email",
      props: {},
    });
    const states: VisitorState[] = [];
    for (const [name, openedAgo] of [
      ["opened-150d", 150 * DAY],
      ["opened-190d", 190 * DAY],
    ] as const) {
      const stub = env.VISITOR.get(env.VISITOR.idFromName(`${person()}-${name}`));
      await runInDurableObject(stub, async (_default: VisitorDO, ctx) => {
        // The same storage, as an object deployed with EVENT_LOG_MAX_AGE_DAYS=200 opens it.
        const visitor = new VisitorDO(ctx, deployed);
        const history = [
          mail(`${name}-send-1`, "email_send", 195 * DAY),
          mail(`${name}-open`, "email_open", openedAgo),
          mail(`${name}-send-2`, "email_send", 30 * DAY),
          mail(`${name}-too-old`, "email_open", 201 * DAY),
        ];
        const result = await visitor.backfill(name, shuffled(history, 3), { now });
        expect(result.status).toBe("stored");
        if (result.status !== "stored") return;
        // The line older than the 200 days kept is refused with that reason; the rest are taken.
        const byId = Object.fromEntries(shuffled(history, 3).map((e, i) => [e.id, result.lines[i]]));
        expect(byId[`${name}-too-old`]).toEqual({
          status: "refused",
          reason: "older than the 200 days of history kept (EVENT_LOG_MAX_AGE_DAYS)",
        });
        expect(byId[`${name}-open`]).toEqual({ status: "accepted" });
        states.push(await visitor.snapshot({ now }));
      });
    }
    expect(segments(states[0]!)).toEqual([]); // opened five months ago: not silent
    expect(segments(states[1]!)).toEqual(["no-open-6m"]); // last open over six months ago
  });
});
