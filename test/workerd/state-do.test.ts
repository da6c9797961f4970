// The visitor's Durable Object through its RPC methods, with time passed in (simulated), inside
// workerd with real SQLite storage. Intent uses the bundled rules: a running product_view adds 4
// to "running" (half-life 7 days, cap 100).

import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decayed } from "../../src/core/intent.ts";
import type { VisitorEvent } from "../../src/core/model.ts";
import type { Env } from "../../src/platform/env.ts";
import { VisitorDO } from "../../src/state/visitor-do.ts";
import { BURST } from "../../src/state/visitor-ingest.ts";
import { visitorObject } from "../../src/state/visitor-object.ts";
import { DEAD_LETTER_LIMIT, IDLE_DELETE_MS, loadHeld } from "../../src/state/visitor-store.ts";
import { poisonScoring } from "./helpers.ts";

const HOUR = 3600e3;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 0, 5, 10); // an exact hour

let n = 0;
const fresh = (prefix = "v") => `${prefix}${Date.now().toString(36)}x${(++n).toString().padStart(14, "0")}`;
const stubOf = (id: string) => visitorObject(env, id);
/** The raw stub, for the test pool's helpers that reach inside the object. */
const rawStubOf = (id: string) => env.VISITOR.get(env.VISITOR.idFromName(id));
const ev = (ts: number, type = "page_view", props: Record<string, unknown> = {}): VisitorEvent => ({
  id: `e-${++n}`,
  type,
  ts,
  channel: "web",
  props,
});

describe("VisitorDO ingest", () => {
  it("stores each event id once: a replay is a duplicate, not a second count", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const e = ev(T0, "add_to_cart", { category: "running" });
    expect(await stub.ingest(id, [e], { now: T0 })).toMatchObject({ status: "stored", accepted: 1 });
    expect(await stub.ingest(id, [e, e], { now: T0 })).toMatchObject({ accepted: 0, duplicates: 2 });
    const state = await stub.snapshot({ now: T0 });
    expect(state.events).toHaveLength(1);
    expect(state.counts.add_to_cart).toEqual([[T0, 1]]);
    expect(state.intent.running).toEqual({ value: 8, ts: T0 });
  });

  it("decays intent over simulated time: value × 2^(−Δt / half-life)", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const view = (ts: number) => ev(ts, "product_view", { category: "running" });
    await stub.ingest(id, [view(T0)], { now: T0 });
    await stub.ingest(id, [view(T0 + 7 * DAY)], { now: T0 + 7 * DAY });
    const state = await stub.snapshot({ now: T0 + 14 * DAY });
    // 4 halved over one half-life, plus 4: 6 at T0+7d; read a half-life later: 3.
    expect(state.intent.running).toEqual({ value: 6, ts: T0 + 7 * DAY });
    expect(decayed(state.intent.running, T0 + 14 * DAY, 7 * DAY)).toBeCloseTo(3, 10);
  });

  it("counts the types the rules read by hourly bucket, exactly at the boundaries, and no other type", async () => {
    const id = fresh();
    const stub = stubOf(id);
    // The bundled rules count add_to_cart in 7 days; no rule counts page views.
    const times = [T0 - 1, T0, T0 + HOUR - 1, T0 + HOUR];
    await stub.ingest(
      id,
      times.flatMap((ts) => [ev(ts), ev(ts, "add_to_cart")]),
      { now: T0 + HOUR },
    );
    const state = await stub.snapshot({ now: T0 + HOUR });
    expect(state.counts.add_to_cart).toEqual([
      [T0 - HOUR, 1],
      [T0, 2],
      [T0 + HOUR, 1],
    ]);
    expect(state.counts.page_view).toBeUndefined();
    expect(state.lastByType.page_view).toBe(T0 + HOUR);
    expect(state.sessionCount).toBe(2); // 59 minutes between the 2nd and 3rd: past the 30-minute gap
  });

  it("tracks sessions, channel engagement and the hour of day in UTC, whatever zone an event names", async () => {
    const id = fresh();
    const stub = stubOf(id);
    await stub.ingest(
      id,
      [
        ev(T0, "email_send"),
        ev(T0 + 60e3, "email_open", { tz: "America/New_York" }),
        ev(T0 + 2 * HOUR, "email_click"),
        ev(T0 + 2 * HOUR, "sms_send"),
      ],
      { now: T0 + 2 * HOUR },
    );
    const state = await stub.snapshot({ now: T0 + 2 * HOUR });
    const emailHours = new Array<number>(24).fill(0);
    emailHours[10] = 1; // the open, 10:01 UTC (05:01 in New York: the zone is read at decision time)
    emailHours[12] = 1; // the click, 12:00 UTC
    expect(state.engagement.email).toEqual({
      sends: 1,
      opens: 1,
      clicks: 1,
      lastAt: T0 + 2 * HOUR,
      hours: emailHours,
    });
    expect(state.engagement.sms).toMatchObject({ sends: 1, opens: 0, clicks: 0 });
    expect(state.engagementHours[10]).toBe(1); // the open, 10:01 UTC
    expect(state.engagementHours[12]).toBe(1); // the click, 12:00 UTC
    expect(state.sessionCount).toBe(0); // sends, opens and clicks are not visits
    expect(state.lastSeen).toBe(T0 + 2 * HOUR); // the click: the sms send after it is the brand's, not the person's
  });

  it("keeps storage bounded: the last 500 events, 30 days of log, 90 days of counters", async () => {
    const id = fresh();
    const stub = stubOf(id);
    // Two types the bundled rules count (add_to_cart in 7 days, email_open in a rate).
    await stub.ingest(id, [ev(T0 - 100 * DAY, "add_to_cart")], { now: T0 - 100 * DAY });
    await stub.ingest(id, [ev(T0 - 40 * DAY, "email_open")], { now: T0 - 40 * DAY });
    for (let b = 0; b < 6; b++) {
      const batch = Array.from({ length: 100 }, (_, i) => ev(T0 + (b * 100 + i) * 1000));
      // Simulated time moves 10 s per batch, so the token bucket refills (20/s).
      await stub.ingest(id, batch, { now: T0 + b * 10_000 });
    }
    const state = await stub.snapshot({ now: T0 + 600_000 });
    expect(state.events).toHaveLength(500);
    expect(state.events[0]!.ts).toBe(T0 + 100_000);
    expect(state.counts.add_to_cart).toBeUndefined(); // 100 days old: past the counters' 90 days
    expect(state.counts.email_open).toHaveLength(1); // 40 days: the counter stays, the event went
    expect(state.events.some((e) => e.type === "email_open")).toBe(false);
    // Storage matches memory: a restarted object loads the same 500.
    await runInDurableObject(rawStubOf(id), (_instance: VisitorDO, ctx) => {
      const rows = ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM event").one();
      expect(rows.n).toBe(500);
    });
  });

  it("takes the log's bounds from EVENT_LOG_MAX and EVENT_LOG_MAX_AGE_DAYS in its env", async () => {
    const id = fresh();
    await runInDurableObject(rawStubOf(id), async (_default: VisitorDO, ctx) => {
      // The same storage, as an object deployed with these vars would open it.
      const configured = new VisitorDO(ctx, {
        ...env,
        EVENT_LOG_MAX: "3",
        EVENT_LOG_MAX_AGE_DAYS: "2",
      } as Env);
      const events = Array.from({ length: 5 }, (_, i) => ev(T0 + i * HOUR));
      await configured.ingest(id, events, { now: T0 + 4 * HOUR });
      const rows = () =>
        ctx.storage.sql
          .exec<{ id: string }>("SELECT id FROM event ORDER BY ts")
          .toArray()
          .map((r) => r.id);
      expect(rows()).toEqual(events.slice(2).map((e) => e.id));
      // Three days on, the log's age bound (two days) leaves only the newest event.
      const late = ev(T0 + 3 * DAY);
      await configured.ingest(id, [late], { now: T0 + 3 * DAY });
      expect(rows()).toEqual([late.id]);
      expect((await configured.snapshot({ now: T0 + 3 * DAY })).events.map((e) => e.id)).toEqual([late.id]);
    });
  });

  it("remembers the id of an event the log's bound let go, so its replay is still a duplicate", async () => {
    const id = fresh();
    await runInDurableObject(rawStubOf(id), async (_default: VisitorDO, ctx) => {
      const configured = new VisitorDO(ctx, { ...env, EVENT_LOG_MAX: "3" } as Env);
      const remembered = () =>
        ctx.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE name = 'seen'").toArray()
          .length > 0
          ? ctx.storage.sql
              .exec<{ id: string }>("SELECT id FROM seen ORDER BY ts")
              .toArray()
              .map((r) => r.id)
          : null;
      const events = Array.from({ length: 5 }, (_, i) => ev(T0 + i * HOUR));
      await configured.ingest(id, events.slice(0, 3), { now: T0 + 2 * HOUR });
      // The log holds every id taken so far: nothing else is written for them.
      expect(remembered()).toBeNull();
      await configured.ingest(id, events.slice(3), { now: T0 + 4 * HOUR });
      expect(remembered()).toEqual(events.slice(0, 2).map((e) => e.id));

      expect(await configured.ingest(id, [events[0]!, events[4]!], { now: T0 + 5 * HOUR })).toMatchObject({
        accepted: 0,
        duplicates: 2,
      });
    });
  });

  it("remembers no id for a proxy page view the log's bound let go (the worker never sends one twice)", async () => {
    const id = fresh();
    await runInDurableObject(rawStubOf(id), async (_default: VisitorDO, ctx) => {
      const configured = new VisitorDO(ctx, { ...env, EVENT_LOG_MAX: "2" } as Env);
      // On the real clock: the write-behind flush prunes by it.
      const start = Date.now() - 4 * HOUR;
      for (let i = 0; i < 4; i++)
        await configured.snapshot({
          visitorId: id,
          now: start + i * HOUR,
          pageView: {
            id: `pv:${crypto.randomUUID()}`,
            type: "page_view",
            ts: start + i * HOUR,
            channel: "web",
            props: {},
          },
        });
      (configured as unknown as { flushPending(): void }).flushPending();
      expect(ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM event").one().n).toBe(2);
      expect(ctx.storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 'seen'").toArray()).toEqual(
        [],
      );
    });
  });

  it("a replay of an event from before consent was withdrawn and given again is still a duplicate", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const e = ev(T0, "search");
    expect(await stub.ingest(id, [e], { now: T0 })).toMatchObject({ status: "stored", accepted: 1 });
    await stub.setConsent({ personalization: false }, { visitorId: id, now: T0 + 1 });
    await stub.setConsent({ personalization: true }, { visitorId: id, now: T0 + 2 });
    expect((await stub.snapshot({ now: T0 + 3 })).events).toEqual([]);
    expect(await stub.ingest(id, [e], { now: T0 + 3 })).toMatchObject({ accepted: 0, duplicates: 1 });
  });

  it("caps the rate per visitor with a token bucket and says when to retry", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const batch = (k: number, ts: number) => Array.from({ length: k }, () => ev(ts));
    expect((await stub.ingest(id, batch(100, T0), { now: T0 })).status).toBe("stored");
    expect((await stub.ingest(id, batch(BURST - 100, T0), { now: T0 })).status).toBe("stored");
    const limited = await stub.ingest(id, batch(40, T0), { now: T0 });
    expect(limited).toEqual({ status: "rate_limited", retryAfterSeconds: 2 });
    // Two seconds later, 40 tokens are back.
    expect((await stub.ingest(id, batch(40, T0 + 2000), { now: T0 + 2000 })).status).toBe("stored");
  });

  it("keeps the last 100 dead letters, with their reason", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const rejected = Array.from({ length: 120 }, (_, i) => ({ index: i, reason: `bad ${i}`, raw: "{}" }));
    await stub.ingest(id, [ev(T0)], { now: T0, rejected });
    const dump = await stub.exportAll();
    expect(dump!.deadLetters).toHaveLength(DEAD_LETTER_LIMIT);
    expect(dump!.deadLetters[0]!.reason).toBe("bad 20");
  });

  it("answers a hot snapshot from memory, without reading storage", async () => {
    const id = fresh();
    const stub = stubOf(id);
    await stub.ingest(id, [ev(T0)], { now: T0 });
    await runInDurableObject(rawStubOf(id), async (instance: VisitorDO, ctx) => {
      const sql = ctx.storage.sql;
      const exec = sql.exec.bind(sql);
      let calls = 0;
      sql.exec = ((...args: Parameters<typeof exec>) => {
        calls++;
        return exec(...args);
      }) as typeof sql.exec;
      try {
        const state = await instance.snapshot({ now: T0 + 1000 });
        expect(state.events).toHaveLength(1);
        expect(calls).toBe(0);
      } finally {
        sql.exec = exec;
      }
    });
  });

  it("a batch that fails half-applied is redone event by event from storage: nothing half-stored, nothing lost", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const first = ev(T0, "page_view");
    await stub.ingest(id, [first], { now: T0 });
    const batch = [ev(T0 + 1, "search"), ev(T0 + 2, "add_to_cart")];
    await runInDurableObject(rawStubOf(id), async (instance: VisitorDO) => {
      // A defect in memory (a corrupted counter) makes the batch throw midway; storage rolls back,
      // memory is read back from storage, and each event is applied on its own.
      const { state } = (instance as unknown as { held: { state: { counts: Record<string, unknown> } } })
        .held;
      state.counts.add_to_cart = "not a bucket list";
      expect(await instance.ingest(id, batch, { now: T0 + 2 })).toMatchObject({
        accepted: 2,
        duplicates: 0,
        failed: [],
      });
    });
    const state = await stub.snapshot({ now: T0 + 3 });
    expect(state.events.map((e) => e.id)).toEqual([first.id, ...batch.map((e) => e.id)]);
    expect(state.counts.add_to_cart).toEqual([[T0, 1]]);
    expect(await stub.ingest(id, batch, { now: T0 + 4 })).toMatchObject({ accepted: 0, duplicates: 2 });
  });

  it("an event that can never be applied costs only itself: dead-lettered, not seen, the rest stored", async () => {
    const id = fresh();
    const batch = [ev(T0, "product_view"), ev(T0 + 1, "search"), ev(T0 + 2, "add_to_cart")];
    await runInDurableObject(rawStubOf(id), async (instance: VisitorDO, ctx) => {
      // A defect that every attempt meets: scoring throws on `search` events.
      await poisonScoring(instance, "search");
      const result = await instance.ingest(id, batch, { now: T0 + 2 });
      expect(result).toMatchObject({ status: "stored", accepted: 2, duplicates: 0 });
      expect(result.status === "stored" && result.failed).toEqual([
        { id: batch[1]!.id, reason: "not applied: scoring exploded" },
      ]);
      // Taken ids are the log's (record 28): the failed event is not among them.
      const logged = ctx.storage.sql
        .exec<{ id: string }>("SELECT id FROM event ORDER BY ts")
        .toArray()
        .map((r) => r.id);
      expect(logged).toEqual([batch[0]!.id, batch[2]!.id]);
      const letters = ctx.storage.sql
        .exec<{ reason: string; raw: string }>("SELECT reason, raw FROM dead_letter")
        .toArray();
      expect(letters).toHaveLength(1);
      expect(letters[0]!.reason).toContain("scoring exploded");
      expect(letters[0]!.raw).toContain(batch[1]!.id);
    });
  });

  it("records exposures, and assignments stay sticky (the first write wins)", async () => {
    const id = fresh();
    const stub = stubOf(id);
    await stub.recordDecision({
      now: T0,
      exposures: [{ experience: "hero-a", placement: "home-hero" }],
      assignments: { "hero-test": "bold" },
    });
    await stub.recordDecision({
      now: T0 + 1,
      exposures: [{ experience: "hero-a", placement: "home-hero" }],
      assignments: { "hero-test": "control" },
    });
    const state = await stub.snapshot({ now: T0 + 2 });
    expect(state.assignments).toEqual({ "hero-test": "bold" });
    expect(state.exposures["hero-a"]).toEqual([T0, T0 + 1]);
  });
});

describe("VisitorDO snapshot for a page (record 29)", () => {
  it("a page gets the exposures of its capped experiences and none of the rest; the decide API gets it all", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const mail = (ts: number, type: string): VisitorEvent => ({ ...ev(ts, type), channel: "email" });
    await stub.ingest(id, [mail(T0, "email_send"), mail(T0 + 60_000, "email_open"), ev(T0 + 120_000)], {
      now: T0 + 120_000,
    });
    await stub.recordDecision({
      now: T0 + HOUR,
      visitorId: id,
      exposures: [
        { experience: "cart-reminder", placement: "promo-banner", capped: true },
        { experience: "browse-reminder", placement: "promo-banner", capped: true },
      ],
      assignments: {},
    });
    const now = T0 + 2 * HOUR;
    const whole = await stub.snapshot({ now, eventsSince: 0 });
    const page = await stub.snapshot({
      now,
      eventsSince: now,
      reads: { countsWithinMs: 0, exposures: ["cart-reminder"], engagement: false },
    });
    expect(Object.keys(whole.exposures).sort()).toEqual(["browse-reminder", "cart-reminder"]);
    expect(Object.keys(whole.engagement)).toContain("email");
    expect(whole.events).toHaveLength(3);
    expect(page.exposures).toEqual({ "cart-reminder": whole.exposures["cart-reminder"] });
    expect(page.engagement).toEqual({});
    expect(page.engagementHours).toEqual([]);
    expect(page.events).toEqual([]);
    expect(page.sessionCount).toBe(whole.sessionCount);
    expect(page.lastByType).toEqual(whole.lastByType);
  });
});

describe("VisitorDO storage", () => {
  it("stored values that do not parse read as absent; the visitor's events and other values are kept", async () => {
    const id = fresh();
    const stub = stubOf(id);
    await stub.ingest(id, [ev(T0, "product_view")], { now: T0 });
    await stub.setConsent({ personalization: true }, { now: T0 });
    await runInDurableObject(rawStubOf(id), (_i: VisitorDO, ctx) => {
      const sql = ctx.storage.sql;
      sql.exec("UPDATE meta SET value = ? WHERE key = 'consent'", "{not json");
      sql.exec("UPDATE meta SET value = ? WHERE key = 'state'", JSON.stringify({ visitorId: 42 }));
      sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('mergedFrom', ?)", JSON.stringify([1, 2]));
      const held = loadHeld(sql);
      expect(held.consent).toEqual({});
      expect(held.mergedFrom).toEqual([]);
      expect(held.state.visitorId).toBe(id);
      expect(held.state.sessionCount).toBe(0);
      expect(held.state.events.map((e) => e.type)).toEqual(["product_view"]);
      expect(held.consentAt).toBe(T0);
    });
  });
});

describe("VisitorDO state stored before the rules chose what to count", () => {
  it("loads, keeps the counters of the types the rules read, and drops the others at the next event", async () => {
    const id = fresh();
    const stub = stubOf(id);
    await stub.ingest(id, [ev(T0, "add_to_cart"), ev(T0 + 1, "page_view")], { now: T0 + 1 });
    await runInDurableObject(rawStubOf(id), (instance: VisitorDO, ctx) => {
      const sql = ctx.storage.sql;
      const row = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'state'").one();
      // The row as the object wrote it before: every type counted, no `counting`, no log cut.
      const { counting: _c, prunedThrough: _p, ...before } = JSON.parse(row.value) as Record<string, unknown>;
      before.counts = { add_to_cart: [[T0, 1]], page_view: [[T0, 1]] };
      sql.exec("UPDATE meta SET value = ? WHERE key = 'state'", JSON.stringify(before));
      // The object restarts and reads it back.
      (instance as unknown as { load(): void }).load();
    });
    const loaded = await stub.snapshot({ now: T0 + 2 });
    expect(loaded.counts).toEqual({ add_to_cart: [[T0, 1]], page_view: [[T0, 1]] });
    expect(loaded.events).toHaveLength(2);
    await stub.ingest(id, [ev(T0 + HOUR, "add_to_cart")], { now: T0 + HOUR });
    const after = await stub.snapshot({ now: T0 + HOUR });
    expect(after.counts).toEqual({
      add_to_cart: [
        [T0, 1],
        [T0 + HOUR, 1],
      ],
    });
  });
});

describe("VisitorDO write-behind", () => {
  const storedEvents = (id: string) =>
    runInDurableObject(rawStubOf(id), (_i: VisitorDO, ctx) =>
      ctx.storage.sql
        .exec<{ type: string }>("SELECT type FROM event ORDER BY ts")
        .toArray()
        .map((r) => r.type),
    );
  const storedAssignments = (id: string) =>
    runInDurableObject(rawStubOf(id), (_i: VisitorDO, ctx) => loadHeld(ctx.storage.sql).state.assignments);

  it("page views and decision records are seen by the next call at once and written together at the alarm", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const now = Date.now();
    await stub.ingest(id, [ev(now - HOUR, "product_view", { category: "running" })], { now: now - HOUR });
    await stub.snapshot({ now, pageView: ev(now), visitorId: id });
    await stub.snapshot({ now: now + 1, pageView: ev(now + 1), visitorId: id });
    await stub.recordDecision({ now: now + 1, exposures: [], assignments: { "hero-test": "bold" } });

    // The caller sees its own writes: memory answers.
    const seen = await stub.snapshot({ now: now + 2 });
    expect(seen.events.map((e) => e.type)).toEqual(["product_view", "page_view", "page_view"]);
    expect(seen.assignments).toEqual({ "hero-test": "bold" });
    // Storage has not been written for them yet: one write per visitor per burst, not per page.
    expect(await storedEvents(id)).toEqual(["product_view"]);
    expect(await storedAssignments(id)).toEqual({});

    expect(await runDurableObjectAlarm(rawStubOf(id))).toBe(true);
    expect(await storedEvents(id)).toEqual(["product_view", "page_view", "page_view"]);
    expect(await storedAssignments(id)).toEqual({ "hero-test": "bold" });
  });

  it("a page view's snapshot says whether the object's consent lets it be measured (its line is the caller's to send)", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const now = Date.now();
    expect((await stub.snapshot({ now, pageView: ev(now), visitorId: id })).pageViewMeasured).toBe(true);
    expect((await stub.snapshot({ now })).pageViewMeasured).toBeUndefined();
    await stub.setConsent({ measurement: false }, { visitorId: id, now });
    const refused = await stub.snapshot({ now: now + 1, pageView: ev(now + 1), visitorId: id });
    expect(refused.pageViewMeasured).toBeUndefined();
    expect(refused.events.map((e) => e.type)).toEqual(["page_view", "page_view"]); // kept, not measured
    expect(await runDurableObjectAlarm(rawStubOf(id))).toBe(true);
    // The outbox is created by the first line queued: this visitor's object never had one.
    const outbox = await runInDurableObject(rawStubOf(id), (_i: VisitorDO, ctx) =>
      ctx.storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 'outbox'").toArray(),
    );
    expect(outbox).toEqual([]);
  });

  it("any other write takes the held page views with it", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const now = Date.now();
    await stub.snapshot({ now, pageView: ev(now), visitorId: id });
    expect(await storedEvents(id)).toEqual([]);
    await stub.ingest(id, [ev(now + 1, "product_view", { category: "running" })], { now: now + 1 });
    expect(await storedEvents(id)).toEqual(["page_view", "product_view"]);
  });
});

/** When the visitor's object's one alarm is set to ring (null: none). */
const alarmOf = (id: string) =>
  runInDurableObject(rawStubOf(id), (_i: VisitorDO, ctx) => ctx.storage.getAlarm());

describe("VisitorDO upkeep", () => {
  it("a visitor who came once is not woken every day: the alarm rings when their page view leaves the 30-day log", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const seenAt = Date.now() - HOUR;
    await stub.ingest(id, [ev(seenAt)], { now: seenAt });
    const leaves = seenAt + 30 * DAY + 1;
    expect(await alarmOf(id)).toBe(leaves);
    // Rung early (the test runs it now): nothing has reached its bound, the alarm is set again for it.
    expect(await runDurableObjectAlarm(rawStubOf(id))).toBe(true);
    expect(await alarmOf(id)).toBe(leaves);
    expect((await stub.snapshot({ now: Date.now() })).events).toHaveLength(1);
  });

  it("once the log is empty, the alarm waits for the next bound: the hour counters' 90 days", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const now = Date.now();
    // A newsletter send 35 days ago: past the 30-day log and the ids' 31 days, within the counters'
    // 90 (the rules count sends for an open rate). A send is not the person's activity, so no
    // inactivity check of the demo rules' journeys comes before it.
    const at = now - 35 * DAY;
    await stub.ingest(id, [{ ...ev(at, "email_send"), channel: "email" }], { now: at });
    expect(await runDurableObjectAlarm(rawStubOf(id))).toBe(true);
    expect((await stub.snapshot({ now })).events).toHaveLength(0);
    await runInDurableObject(rawStubOf(id), (_i: VisitorDO, ctx) => {
      // No id remembered: the send left the log past every accept window (no `seen` table made for it).
      const remembers = ctx.storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 'seen'").toArray();
      expect(remembers.length === 0 ? [] : ctx.storage.sql.exec("SELECT id FROM seen").toArray()).toEqual([]);
    });
    const bucket = Math.floor(at / HOUR) * HOUR;
    expect(await alarmOf(id)).toBe(bucket + 90 * DAY + 1);
  });

  it("with ANONYMOUS_IDLE_DAYS=30 an anonymous visitor idle 31 days is deleted at its alarm; a known person is kept", async () => {
    const deployed = { ...env, ANONYMOUS_IDLE_DAYS: "30" } as unknown as Env;
    const now = Date.now();
    const anonymous = fresh("anon");
    const known = `u_${"c".repeat(24)}${(++n).toString(16).padStart(8, "0")}`;
    const kept: Record<string, boolean> = {};
    for (const id of [anonymous, known]) {
      await runInDurableObject(rawStubOf(id), async (_default: VisitorDO, ctx) => {
        // The same storage, as an object deployed with ANONYMOUS_IDLE_DAYS=30 opens it.
        const visitor = new VisitorDO(ctx, deployed);
        await visitor.ingest(id, [ev(now - 31 * DAY, "product_view")], { now: now - 31 * DAY });
        await visitor.alarm();
        kept[id] = (await visitor.exportAll()) !== null;
      });
    }
    expect(kept).toEqual({ [anonymous]: false, [known]: true });
  });

  it("a consent answer alone keeps the visitor 400 days; an event then brings the alarm forward to its own bound", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const now = Date.now();
    await stub.setConsent({ personalization: true }, { visitorId: id, now });
    expect(await alarmOf(id)).toBe(now + IDLE_DELETE_MS + 1);
    await stub.ingest(id, [ev(now)], { now });
    expect(await alarmOf(id)).toBe(now + 30 * DAY + 1);
  });

  it("a visitor idle for 400 days deletes itself at its alarm", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const longAgo = Date.now() - IDLE_DELETE_MS - DAY;
    await stub.ingest(id, [ev(longAgo)], { now: longAgo });
    expect(await runDurableObjectAlarm(rawStubOf(id))).toBe(true);
    expect(await stub.exportAll()).toBeNull();
    await runInDurableObject(rawStubOf(id), (_i: VisitorDO, ctx) => {
      expect(ctx.storage.sql.exec("SELECT * FROM event").toArray()).toHaveLength(0);
    });
  });

  it("a newsletter reader with only brand sends is not idle: the alarm keeps them", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const now = Date.now();
    await stub.ingest(id, [{ ...ev(now - DAY, "email_send"), channel: "email" }], { now: now - DAY });
    expect(await runDurableObjectAlarm(rawStubOf(id))).toBe(true);
    expect((await stub.snapshot({ now })).events.map((e) => e.type)).toEqual(["email_send"]);
  });

  it("an active visitor's alarm prunes and re-arms", async () => {
    const id = fresh();
    const stub = stubOf(id);
    const now = Date.now();
    await stub.ingest(id, [ev(now - 35 * DAY), ev(now - HOUR)], { now: now - HOUR });
    expect(await runDurableObjectAlarm(rawStubOf(id))).toBe(true);
    const state = await stub.snapshot({ now });
    expect(state.events).toHaveLength(1);
    await runInDurableObject(rawStubOf(id), async (_i: VisitorDO, ctx) => {
      expect(await ctx.storage.getAlarm()).toBeGreaterThan(now);
    });
  });
});

describe("VisitorDO stitching", () => {
  it("hands an anonymous history to the known person once; merging twice changes nothing", async () => {
    const anon = fresh("a");
    const known = `u_${"0123456789abcdef".repeat(2).slice(0, 24)}${(++n).toString(16).padStart(8, "0")}`;
    await stubOf(known).ingest(known, [ev(T0, "product_view", { category: "running" })], { now: T0 });
    await stubOf(known).recordDecision({ now: T0, exposures: [], assignments: { exp: "known-variant" } });
    await stubOf(anon).ingest(
      anon,
      [ev(T0 + HOUR, "add_to_cart", { category: "running" }), ev(T0 + HOUR, "purchase")],
      { now: T0 + HOUR },
    );
    await stubOf(anon).recordDecision({
      now: T0,
      exposures: [],
      assignments: { exp: "anon-variant", other: "b" },
    });

    const first = await stubOf(anon).handOver(known, anon, T0 + 2 * HOUR);
    // The experiments whose rows the caller re-keys to the person.
    expect(first).toEqual({ merged: true, events: 2, experiments: ["exp", "other"] });
    const once = await stubOf(known).snapshot({ now: T0 + 2 * HOUR });

    expect(await stubOf(anon).handOver(known, anon, T0 + 3 * HOUR)).toMatchObject({ merged: false });
    // Even a dump replayed directly is recognised by its merge id.
    const replay = await stubOf(known).mergeFrom(
      { visitorId: anon, state: once, consent: {}, deadLetters: [], mergedFrom: [] },
      anon,
      { now: T0 + 3 * HOUR },
    );
    expect(replay).toMatchObject({ merged: false });
    const twice = await stubOf(known).snapshot({ now: T0 + 3 * HOUR });
    expect(twice).toEqual(once);

    expect(once.events.map((e) => e.type)).toEqual(["product_view", "add_to_cart", "purchase"]);
    expect(once.assignments).toEqual({ exp: "known-variant", other: "b" });
    expect(once.conversions.purchase).toBe(T0 + HOUR);
    expect(once.counts.add_to_cart).toEqual([[T0 + HOUR, 1]]);
    // Scores: both decayed to the merge time and added: the known 4 (two hours old) and the
    // anonymous 8 (one hour old), at a 7-day half-life.
    const halfLife = 7 * DAY;
    expect(once.intent.running!.value).toBeCloseTo(
      4 * 2 ** ((-2 * HOUR) / halfLife) + 8 * 2 ** (-HOUR / halfLife),
      9,
    );
    expect(once.sessionCount).toBe(2); // an hour apart: two visits (within 30 minutes they would be one)

    // The anonymous object keeps only a forwarding address: later calls under its id land with the person.
    expect(await stubOf(anon).exportAll()).toBeNull();
    expect(
      await stubOf(anon).ingest(anon, [ev(T0 + 4 * HOUR, "search")], { now: T0 + 4 * HOUR }),
    ).toMatchObject({
      status: "stored",
      accepted: 1,
    });
    const viaAnon = await stubOf(anon).snapshot({ now: T0 + 4 * HOUR });
    expect(viaAnon.visitorId).toBe(known);
    expect(viaAnon.events.at(-1)!.type).toBe("search");
  });

  it("an anonymous visitor already merged into someone else is reported, not silently re-merged", async () => {
    const anon = fresh("b");
    const alice = `u_${"a".repeat(24)}${(++n).toString(16).padStart(8, "0")}`;
    const bob = `u_${"b".repeat(24)}${(++n).toString(16).padStart(8, "0")}`;
    await stubOf(anon).ingest(anon, [ev(T0)], { now: T0 });
    expect((await stubOf(anon).handOver(alice, anon, T0)).merged).toBe(true);
    expect(await stubOf(anon).handOver(bob, anon, T0)).toMatchObject({
      merged: false,
      refused: "linked",
      linkedTo: alice,
    });
  });

  it("withdrawn personalization consent removes behaviour already held; nothing new is stored", async () => {
    const id = fresh();
    const stub = stubOf(id);
    await stub.ingest(id, [ev(T0, "product_view", { category: "running" })], { now: T0 });
    expect(await stub.setConsent({ personalization: false }, { visitorId: id, now: T0 })).toEqual({
      personalization: false,
    });
    expect(await stub.ingest(id, [ev(T0 + 1)], { now: T0 + 1 })).toEqual({ status: "no_consent" });
    const state = await stub.snapshot({ now: T0 + 2, pageView: ev(T0 + 2) });
    expect(state.events).toHaveLength(0);
    expect(state.intent).toEqual({});
    expect((await stub.exportAll())!.consent).toEqual({ personalization: false });
  });

  it("erase leaves a tombstone: later events are refused", async () => {
    const id = fresh();
    const stub = stubOf(id);
    await stub.ingest(id, [ev(T0)], { now: T0 });
    await stub.erase();
    expect(await stub.exportAll()).toBeNull();
    expect(await stub.ingest(id, [ev(T0 + 1)], { now: T0 + 1 })).toEqual({ status: "suppressed" });
    await runInDurableObject(rawStubOf(id), (_i: VisitorDO, ctx) => {
      const tables = ctx.storage.sql
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'",
        )
        .toArray()
        .map((r) => r.name);
      expect(tables).toEqual(["meta"]);
    });
  });
});
