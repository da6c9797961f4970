// The producer side of the export, through the real bindings: the routes store, the visitor's
// object sends what it acknowledged to the EXPORT queue, the queue delivers to the worker's own
// queue() handler (wrangler.toml's consumer), and the files land in R2. Delivery is asynchronous
// (the queue's batch window), so each test polls R2 for the lines it expects (vi.waitFor) instead
// of asserting at a given time; "nothing exported" is checked once a later marker event arrived.
import {
  createExecutionContext,
  runDurableObjectAlarm,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import * as z from "zod";
import { handle } from "../../src/http/app.ts";
import {
  dropExpired,
  enqueueExport,
  OUTBOX_MAX_AGE_MS,
  OUTBOX_MAX_ROWS,
  SEND_DEADLINE_MS,
  sendOutbox,
} from "../../src/state/export-outbox.ts";
import {
  type ExportMessage,
  type ExportRecord,
  ExportRecordSchema,
  eventRecord,
} from "../../src/state/export-record.ts";
import { droppedWriteCount } from "../../src/state/stored-value.ts";
import type { VisitorDO } from "../../src/state/visitor-do.ts";
import { canonicalForUser } from "../../src/state/visitor-id.ts";
import { visitorObject } from "../../src/state/visitor-object.ts";
import { exportedWhen, hasId } from "./export-lines.ts";
import {
  ADMIN,
  BROWSER_UA,
  countedVisitors,
  eid,
  idOf,
  newVisitor,
  SERVER,
  sendEvents,
  visit,
} from "./helpers.ts";

function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return visit(`/_ns${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

describe("the export's producers", () => {
  it("a browser's beacon events are exported once each, with the visitor's id, a resend adding nothing", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    const events = [
      { id: eid(), type: "product_view", props: { category: "running", productId: "sku-1" } },
      { id: eid(), type: "add_to_cart", props: { category: "running" } },
    ];
    expect((await sendEvents(cookie, events)).status).toBe(202);
    expect((await sendEvents(cookie, events)).status).toBe(202); // the beacon's retry: duplicates
    const marker = { id: eid(), type: "search", props: {} };
    expect((await sendEvents(cookie, [marker])).status).toBe(202);

    const lines = await exportedWhen(hasId(`event:${visitorId}:${marker.id}`));
    const mine = lines.filter((line) => line.kind === "event" && line.visitorId === visitorId);
    const ids = mine.map((line) => (line.kind === "event" ? line.event.id : ""));
    for (const event of [...events, marker]) expect(ids.filter((id) => id === event.id)).toHaveLength(1);
    const cart = mine.find((line) => line.kind === "event" && line.event.type === "add_to_cart");
    expect(cart).toMatchObject({
      v: 1,
      kind: "event",
      event: { channel: "web", props: { category: "running" } },
    });
  });

  it("a backfill exports each accepted event once, at the time it happened; the same file again adds nothing", async () => {
    const userId = `export-backfill-${Date.now()}`;
    const person = await canonicalForUser(userId);
    const ts = Date.now() - 20 * 86400e3;
    const history = [
      { id: eid(), type: "email_send", ts: ts - 3600e3, channel: "email" },
      { id: eid(), type: "email_open", ts, channel: "email" },
    ];
    const file = history.map((event) => JSON.stringify({ id: `user:${userId}`, event })).join("\n");
    const backfill = () =>
      visit("/_ns/v1/events/import", {
        method: "POST",
        headers: { ...SERVER, "content-type": "application/x-ndjson" },
        body: file,
      });
    expect((await backfill()).status).toBe(200);
    expect((await backfill()).status).toBe(200); // every line a duplicate the second time
    const marker = { id: eid(), type: "search", props: {} };
    expect((await post("/v1/events", { userId, events: [marker] }, SERVER)).status).toBe(202);

    const lines = await exportedWhen(hasId(`event:${person}:${marker.id}`));
    for (const event of history) {
      const exported = lines.filter((line) => line.id === `event:${person}:${event.id}`);
      expect(exported).toHaveLength(1);
      expect(exported[0]).toMatchObject({
        at: new Date(event.ts).toISOString(),
        event: { type: event.type },
      });
    }
  });

  it("a decide call exports its events and what it showed (experiment, variant, rules version); an identify exports the link", async () => {
    const userId = `export-${Date.now()}@example.com`;
    const person = await canonicalForUser(userId);
    const event = { id: eid(), type: "product_view", props: { category: "hiking" } };
    const res = await post(
      "/v1/decide",
      { userId, channel: "app", placements: ["home-hero"], events: [event] },
      SERVER,
    );
    expect(res.status).toBe(200);
    const decided = (await res.json()) as {
      rulesVersion: string;
      decisions: Record<string, { experience: string | null; variant: string | null }>;
    };
    const shown = decided.decisions["home-hero"]!;
    expect(shown.experience).not.toBeNull();

    const cookie = await newVisitor();
    const anonymousId = idOf(cookie);
    expect((await post("/v1/identify", { userId, anonymousId }, SERVER)).status).toBe(200);

    const lines = await exportedWhen(
      (all) =>
        all.some((line) => line.kind === "exposure" && line.visitorId === person) &&
        all.some((line) => line.kind === "identity_link" && line.anonymousId === anonymousId) &&
        all.some((line) => line.id === `event:${person}:${event.id}`),
    );
    expect(lines.find((line) => line.kind === "exposure" && line.visitorId === person)).toMatchObject({
      placement: "home-hero",
      experience: shown.experience,
      variant: shown.variant,
      rulesVersion: decided.rulesVersion,
    });
    expect(
      lines.find((line) => line.kind === "identity_link" && line.anonymousId === anonymousId),
    ).toMatchObject({
      visitorId: person,
    });
  });

  it("a returning visitor's page with nothing new to keep makes one object call, and what it showed is exported", async () => {
    // The hero test holds 10% of visitors out, and shows them nothing to export: take one it shows.
    const shownAnArm = async (id: string) => {
      const url = encodeURIComponent("https://shop.test/");
      const res = await visit(`/_ns/v1/explain?visitorId=${id}&url=${url}`, { headers: ADMIN });
      const body = (await res.json()) as { decisions: Record<string, { variant: string | null }> };
      return Boolean(body.decisions["home-hero"]?.variant);
    };
    let cookie = await newVisitor();
    while (!(await shownAnArm(idOf(cookie)))) cookie = await newVisitor();
    const visitorId = idOf(cookie);
    // Each page settled (its writes and sends done), with a deadline no busy test machine misses.
    const page = async (visitors: typeof env.VISITOR) => {
      const ctx = createExecutionContext();
      const res = await handle(
        new Request("https://shop.test/", { headers: { "user-agent": BROWSER_UA, cookie } }),
        { ...env, VISITOR: visitors, STORE_DEADLINE_MS: "5000" },
        ctx,
      );
      await res.text();
      await waitOnExecutionContext(ctx);
      return res;
    };
    // Pages with the cookie: the first assigns the hero test; the first-visit offer (capped at 3 a
    // day) is shown, and stored, until its cap is reached.
    for (let n = 0; n < 3; n++) await page(env.VISITOR);

    const calls: string[] = [];
    const res = await page(countedVisitors(calls));
    expect(res.headers.get("cache-control")).toBe("private, no-store");
    expect(calls).toEqual(["snapshot"]);

    // Four pages with the cookie, four hero lines: the last sent by the worker itself.
    const heroLines = (all: ExportRecord[]) =>
      all.filter(
        (line) => line.kind === "exposure" && line.visitorId === visitorId && line.placement === "home-hero",
      );
    const lines = await exportedWhen((all) => heroLines(all).length === 4);
    expect(new Set(heroLines(lines).map((line) => line.id)).size).toBe(4);
    expect(heroLines(lines).at(-1)).toMatchObject({ v: 1, experience: "hero-ab", experiment: "hero-test" });
  });

  it("an erasure exports the person's ids, aliases included", async () => {
    const userId = `erase-${Date.now()}@example.com`;
    const person = await canonicalForUser(userId);
    const cookie = await newVisitor();
    const anonymousId = idOf(cookie);
    expect((await post("/v1/identify", { userId, anonymousId }, SERVER)).status).toBe(200);
    const erased = await visit(`/_ns/v1/profiles/user:${encodeURIComponent(userId)}`, {
      method: "DELETE",
      headers: ADMIN,
    });
    expect(erased.status).toBe(200);
    const lines = await exportedWhen((all) =>
      all.some((line) => line.kind === "erasure" && line.visitorId === person),
    );
    const erasure = lines.find((line) => line.kind === "erasure" && line.visitorId === person);
    expect(erasure?.kind === "erasure" && [...erasure.ids].sort()).toEqual([anonymousId, person].sort());
  });

  it("nothing is exported for a visitor under Global Privacy Control or who refused measurement", async () => {
    const gpcVisitor = await newVisitor();
    const gpcEvent = { id: eid(), type: "product_view", props: {} };
    expect((await sendEvents(gpcVisitor, [gpcEvent], { headers: { "sec-gpc": "1" } })).status).toBe(202);

    const refusing = await newVisitor();
    const consent = await visit("/_ns/v1/consent", {
      method: "POST",
      cookie: refusing,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ purposes: { measurement: false } }),
    });
    expect(consent.status).toBe(200);
    const kept = { id: eid(), type: "product_view", props: {} };
    const stored = (await (await sendEvents(refusing, [kept])).json()) as { stored: number };
    expect(stored.stored).toBe(1); // kept for personalization, not measured
    // A page of theirs: its view is kept, and neither the worker nor the object exports it.
    const pageUrl = `https://shop.test/?refusing=${eid()}`;
    const ctx = createExecutionContext();
    const page = await handle(
      new Request(pageUrl, { headers: { "user-agent": BROWSER_UA, cookie: refusing } }),
      { ...env, STORE_DEADLINE_MS: "5000" },
      ctx,
    );
    await page.text();
    await waitOnExecutionContext(ctx);

    // A later event of a measured visitor is the marker: what came before it had its chance to arrive.
    const other = await newVisitor();
    const marker = { id: eid(), type: "search", props: {} };
    await sendEvents(other, [marker]);
    const lines = await exportedWhen(hasId(`event:${idOf(other)}:${marker.id}`));
    const ids = new Set(lines.map((line) => line.id));
    expect(ids.has(`event:${idOf(gpcVisitor)}:${gpcEvent.id}`)).toBe(false);
    expect(ids.has(`event:${idOf(refusing)}:${kept.id}`)).toBe(false);
    expect(lines.some((line) => line.kind === "event" && line.event.props.url === pageUrl)).toBe(false);
  });
});

describe("both gates on a page view's line", () => {
  it("a page view is not exported when the visitor's object refuses measurement, though the worker's gate would allow it", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    // The object holds "no measurement"; the profile in KV, which the worker reads, says nothing.
    await visitorObject(env, visitorId).setConsent({ measurement: false }, { visitorId });
    const pageUrl = `https://shop.test/?object-refuses=${eid()}`;
    const ctx = createExecutionContext();
    const page = await handle(
      new Request(pageUrl, { headers: { "user-agent": BROWSER_UA, cookie } }),
      { ...env, STORE_DEADLINE_MS: "5000" },
      ctx,
    );
    expect(page.status).toBe(200);
    await page.text();
    await waitOnExecutionContext(ctx);
    // The view is kept for personalization...
    const held = await visitorObject(env, visitorId).snapshot({ now: Date.now(), eventsSince: 0 });
    expect(held.events.some((event) => event.props.url === pageUrl)).toBe(true);
    // ...and no line of it reached the export, by the worker or by the object.
    const other = await newVisitor();
    const marker = { id: eid(), type: "search", props: {} };
    await sendEvents(other, [marker]);
    const lines = await exportedWhen(hasId(`event:${idOf(other)}:${marker.id}`));
    expect(lines.some((line) => line.kind === "event" && line.event.props.url === pageUrl)).toBe(false);
  });
});

describe("the object's outbox: nothing acknowledged is lost on the way out", () => {
  const stubOf = (visitorId: string) => env.VISITOR.get(env.VISITOR.idFromName(visitorId));

  /** A queue that refuses every send while `down` (an injected fault), recording the ids it took. */
  function faultyQueue() {
    const taken: string[] = [];
    let refuse: () => void = () => {};
    const fault = {
      down: true,
      /** Resolves at the first refusal: the object's own send was tried and refused. */
      refused: new Promise<void>((resolve) => {
        refuse = resolve;
      }),
      taken,
      queue: {
        async sendBatch(messages: Iterable<MessageSendRequest<ExportMessage>>) {
          if (fault.down) {
            refuse();
            throw new Error("injected: queue unavailable");
          }
          const batch = [...messages];
          // A message carries the records sent together (record 27): the ids of each.
          taken.push(...batch.flatMap((message) => [message.body].flat().map((record) => record.id)));
          await env.EXPORT.sendBatch(batch);
        },
      } as unknown as Queue,
    };
    return fault;
  }

  /** The object sends through `queue` from now on (its other bindings unchanged). */
  async function sendThrough(visitorId: string, queue: Queue): Promise<void> {
    await runInDurableObject(stubOf(visitorId), (instance: VisitorDO) => {
      const own = instance as unknown as { env: Env };
      own.env = Object.create(env, { EXPORT: { value: queue } }) as Env;
    });
  }

  /** The lines waiting in the object's outbox (none before its first line created the table). */
  const outboxRows = (visitorId: string) =>
    runInDurableObject(stubOf(visitorId), (_instance: VisitorDO, ctx) => {
      const sql = ctx.storage.sql;
      if (sql.exec("SELECT name FROM sqlite_master WHERE name = 'outbox'").toArray().length === 0) return 0;
      return sql.exec<{ body: string }>("SELECT body FROM outbox ORDER BY seq").toArray().length;
    });

  /** The lines with `id` in R2, counted once a later marker line arrived (so a copy had its chance). */
  async function linesWithId(id: string): Promise<number> {
    await exportedWhen(hasId(id));
    const other = await newVisitor();
    const marker = { id: eid(), type: "search", props: {} };
    await sendEvents(other, [marker]);
    const lines = await exportedWhen(hasId(`event:${idOf(other)}:${marker.id}`));
    return lines.filter((line) => line.id === id).length;
  }

  it("the queue refuses: the event is still acknowledged, and once the queue is back the alarm sends it; it lands once", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    const fault = faultyQueue();
    await sendThrough(visitorId, fault.queue);
    const event = { id: eid(), type: "add_to_cart", props: { category: "running" } };
    expect((await sendEvents(cookie, [event])).status).toBe(202);
    await fault.refused;
    expect(await outboxRows(visitorId)).toBe(1); // refused, kept

    fault.down = false;
    expect(await runDurableObjectAlarm(stubOf(visitorId))).toBe(true);
    expect(fault.taken).toEqual([`event:${visitorId}:${event.id}`]);
    expect(await outboxRows(visitorId)).toBe(0);
    expect(await linesWithId(`event:${visitorId}:${event.id}`)).toBe(1);
  });

  it("a returning visitor's page view is exported once, by the worker: its object writes no outbox row for it", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    // An event first, so the object exists and its upkeep alarm is armed (its flush runs the views).
    const first = { id: eid(), type: "search", props: {} };
    expect((await sendEvents(cookie, [first])).status).toBe(202);
    await exportedWhen(hasId(`event:${visitorId}:${first.id}`));
    // From now on the object's own sends are refused: any line it queued would stay in its outbox.
    const fault = faultyQueue();
    await sendThrough(visitorId, fault.queue);
    // A page with placements (its view goes with the snapshot) and one without (its view after).
    const urls = ["https://shop.test/?b19=placed", "https://shop.test/b19-plain"];
    for (const url of urls) {
      const ctx = createExecutionContext();
      const res = await handle(
        new Request(url, { headers: { "user-agent": BROWSER_UA, cookie } }),
        { ...env, STORE_DEADLINE_MS: "5000" },
        ctx,
      );
      await res.text();
      await waitOnExecutionContext(ctx);
    }
    // The alarm writes the held views (the write-behind flush).
    expect(await runDurableObjectAlarm(stubOf(visitorId))).toBe(true);
    const views = await runInDurableObject(stubOf(visitorId), (_instance: VisitorDO, ctx) =>
      ctx.storage.sql.exec<{ id: string }>("SELECT id FROM event WHERE type = 'page_view'").toArray(),
    );
    expect(views).toHaveLength(2);
    expect(await outboxRows(visitorId)).toBe(0);
    expect(fault.taken).toEqual([]);

    const viewLines = (all: ExportRecord[]) =>
      all.filter(
        (line) =>
          line.kind === "event" &&
          line.visitorId === visitorId &&
          urls.includes(String(line.event.props.url)),
      );
    const lines = await exportedWhen((all) => viewLines(all).length >= 2);
    const ids = viewLines(lines).map((line) => line.id);
    expect(ids.sort()).toEqual(views.map((view) => `event:${visitorId}:${view.id}`).sort());
    for (const id of ids) expect(await linesWithId(id)).toBe(1);
  });

  it("a decide call's event is kept in the outbox while the queue refuses, and goes out once after it recovers; its exposure is the worker's to send", async () => {
    const userId = `outbox-${eid()}@example.com`;
    const person = await canonicalForUser(userId);
    const fault = faultyQueue();
    await sendThrough(person, fault.queue);
    const event = { id: eid(), type: "product_view", props: { category: "hiking" } };
    const res = await post(
      "/v1/decide",
      { userId, channel: "app", placements: ["home-hero"], events: [event] },
      SERVER,
    );
    expect(res.status).toBe(200);
    await fault.refused;
    await vi.waitFor(async () => expect(await outboxRows(person)).toBe(1), { timeout: 5000 });

    fault.down = false;
    expect(await runDurableObjectAlarm(stubOf(person))).toBe(true);
    expect(fault.taken).toEqual([`event:${person}:${event.id}`]);
    expect(await outboxRows(person)).toBe(0);
    // What the decision showed went from the worker to the queue, not through the object.
    await exportedWhen((all) => all.some((line) => line.kind === "exposure" && line.visitorId === person));
  });

  it(`a queue that never answers counts as refused after ${SEND_DEADLINE_MS / 1000} s: the line stays for the alarm`, async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    const fault = faultyQueue();
    await sendThrough(visitorId, fault.queue);
    const event = { id: eid(), type: "search", props: {} };
    expect((await sendEvents(cookie, [event])).status).toBe(202);
    await fault.refused;
    expect(await outboxRows(visitorId)).toBe(1);

    const silent = { sendBatch: () => new Promise<void>(() => {}) } as unknown as Queue;
    const sent = await runInDurableObject(stubOf(visitorId), async (_instance: VisitorDO, ctx) => {
      vi.useFakeTimers();
      try {
        const sending = sendOutbox(ctx.storage.sql, { EXPORT: silent }, null, () => false);
        await vi.advanceTimersByTimeAsync(SEND_DEADLINE_MS);
        return await sending;
      } finally {
        vi.useRealTimers();
      }
    });
    expect(sent).toBe(false);
    expect(await outboxRows(visitorId)).toBe(1);
    fault.down = false;
    expect(await runDurableObjectAlarm(stubOf(visitorId))).toBe(true);
    expect(fault.taken).toEqual([`event:${visitorId}:${event.id}`]);
  });

  it("a send the queue accepted is not sent again by the alarm", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    const fault = faultyQueue();
    fault.down = false;
    await sendThrough(visitorId, fault.queue);
    const event = { id: eid(), type: "product_view", props: {} };
    expect((await sendEvents(cookie, [event])).status).toBe(202);
    await vi.waitFor(async () => expect(await outboxRows(visitorId)).toBe(0), { timeout: 5000 });

    expect(await runDurableObjectAlarm(stubOf(visitorId))).toBe(true);
    expect(fault.taken).toEqual([`event:${visitorId}:${event.id}`]);
    expect(await linesWithId(`event:${visitorId}:${event.id}`)).toBe(1);
  });

  it(`holds at most ${OUTBOX_MAX_ROWS} unsent sends: the oldest go past it, counted as export_outbox_full`, async () => {
    const visitorId = `outbox-full-${eid()}`;
    const sends = Array.from({ length: OUTBOX_MAX_ROWS + 5 }, (_, i) =>
      eventRecord(visitorId, {
        id: `e-${i}`,
        type: "page_view",
        ts: Date.UTC(2026, 0, 1),
        channel: "web",
        props: {},
      }),
    );
    const before = droppedWriteCount("export_outbox_full");
    const ids = await runInDurableObject(stubOf(visitorId), (_instance: VisitorDO, ctx) => {
      for (const record of sends) enqueueExport(ctx.storage.sql, [record], Date.now());
      return ctx.storage.sql
        .exec<{ body: string }>("SELECT body FROM outbox ORDER BY seq")
        .toArray()
        .flatMap((row) =>
          z
            .array(ExportRecordSchema)
            .parse(JSON.parse(row.body))
            .map((line) => line.id),
        );
    });
    expect(ids).toHaveLength(OUTBOX_MAX_ROWS);
    expect(ids[0]).toBe(sends[5]!.id);
    expect(droppedWriteCount("export_outbox_full")).toBe(before + 5);
  });

  it("a send's lines wait in one outbox row, and go to the queue as one message", async () => {
    const visitorId = `outbox-packed-${eid()}`;
    const lines = Array.from({ length: 3 }, (_, i) =>
      eventRecord(visitorId, {
        id: `e-${i}`,
        type: "search",
        ts: Date.UTC(2026, 0, 1),
        channel: "web",
        props: {},
      }),
    );
    const messages: ExportMessage[] = [];
    const queue = {
      async sendBatch(batch: Iterable<MessageSendRequest<ExportMessage>>) {
        for (const message of batch) messages.push(message.body);
      },
    } as unknown as Queue;
    const rows = await runInDurableObject(stubOf(visitorId), async (_instance: VisitorDO, ctx) => {
      const range = enqueueExport(ctx.storage.sql, lines, Date.now());
      const waiting = ctx.storage.sql.exec("SELECT seq FROM outbox").toArray().length;
      expect(await sendOutbox(ctx.storage.sql, { EXPORT: queue }, range, () => false)).toBe(true);
      return { waiting, left: ctx.storage.sql.exec("SELECT seq FROM outbox").toArray().length };
    });
    expect(rows).toEqual({ waiting: 1, left: 0 });
    expect(messages.map((message) => [message].flat().map((line) => line.id))).toEqual([
      lines.map((line) => line.id),
    ]);
  });

  it("a line unsent for 3 days is dropped at the alarm, counted as export_outbox_expired, never sent", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    const fault = faultyQueue();
    fault.down = false;
    await sendThrough(visitorId, fault.queue);
    const old = eventRecord(visitorId, {
      id: eid(),
      type: "page_view",
      ts: Date.now(),
      channel: "web",
      props: {},
    });
    const before = droppedWriteCount("export_outbox_expired");
    await runInDurableObject(stubOf(visitorId), async (_instance: VisitorDO, ctx) => {
      enqueueExport(ctx.storage.sql, [old], Date.now() - OUTBOX_MAX_AGE_MS - 1);
      await ctx.storage.setAlarm(Date.now() + 60_000);
    });
    expect(await runDurableObjectAlarm(stubOf(visitorId))).toBe(true);
    expect(await outboxRows(visitorId)).toBe(0);
    expect(fault.taken).toEqual([]);
    // The alarm counts in the object's own module instance; the same drop, counted where this test reads.
    await runInDurableObject(stubOf(visitorId), (_instance: VisitorDO, ctx) => {
      enqueueExport(ctx.storage.sql, [old], Date.now() - OUTBOX_MAX_AGE_MS - 1);
      expect(dropExpired(ctx.storage.sql, Date.now())).toBe(1);
    });
    expect(droppedWriteCount("export_outbox_expired")).toBe(before + 1);
  });

  it("an erased visitor's unsent lines are dropped, and the erasure line still goes out", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    const fault = faultyQueue();
    await sendThrough(visitorId, fault.queue);
    expect((await sendEvents(cookie, [{ id: eid(), type: "product_view", props: {} }])).status).toBe(202);
    await fault.refused;
    const erased = await visit(`/_ns/v1/profiles/${visitorId}`, { method: "DELETE", headers: ADMIN });
    expect(erased.status).toBe(200);
    const tables = await runInDurableObject(stubOf(visitorId), (_instance: VisitorDO, ctx) =>
      ctx.storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 'outbox'").toArray(),
    );
    expect(tables).toEqual([]);
    expect(await runDurableObjectAlarm(stubOf(visitorId))).toBe(false);
    await exportedWhen((all) => all.some((line) => line.kind === "erasure" && line.visitorId === visitorId));
  });
});
