// What a visitor's object writes, in the rows Cloudflare bills (docs/decisions.md, record 28): its
// tables are keyed WITHOUT ROWID and the log answers for the ids it holds, so a page view, an event
// and a meta value are one row each; and an object stored with the earlier rowid tables keeps
// everything it held.
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { ExperimentDO } from "../../src/measure/experiment-do.ts";
import type { Env } from "../../src/platform/env.ts";
import type { ExportMessage } from "../../src/state/export-record.ts";
import type { VisitorDO } from "../../src/state/visitor-do.ts";
import { createTables, loadHeld } from "../../src/state/visitor-store.ts";
import { eid, idOf, newVisitor, sendEvents, visit, visitorCookie, writeHeldViews } from "./helpers.ts";

const stubOf = (name: string) => env.VISITOR.get(env.VISITOR.idFromName(name));

interface Counted {
  sql: SqlStorage;
}
/** The rows written since `startCounting`, per object name. */
const tallies = new Map<string, { rows: number }>();

/**
 * From now on, every statement the object runs adds the rows it wrote (its cursor's own
 * `rowsWritten`, what Cloudflare bills) to the object's tally, until `stopCounting`.
 */
function startCounting(name: string): Promise<void> {
  return runInDurableObject(stubOf(name), (instance: VisitorDO, ctx) => {
    const sql = ctx.storage.sql;
    const tally = { rows: 0 };
    tallies.set(name, tally);
    (instance as unknown as Counted).sql = new Proxy(sql, {
      get(target, key) {
        if (key === "exec")
          return (query: string, ...bindings: SqlStorageValue[]) => {
            const cursor = target.exec(query, ...bindings);
            const all = cursor.toArray();
            tally.rows += cursor.rowsWritten;
            // Handed back consumed: callers iterate it or read `toArray()` / `one()`.
            return Object.assign(all[Symbol.iterator](), {
              toArray: () => all,
              one: () => all[0],
              rowsWritten: cursor.rowsWritten,
              rowsRead: cursor.rowsRead,
            });
          };
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  });
}

function stopCounting(name: string): Promise<number> {
  return runInDurableObject(stubOf(name), (instance: VisitorDO, ctx) => {
    (instance as unknown as Counted).sql = ctx.storage.sql;
    return tallies.get(name)!.rows;
  });
}

/** The layout SQLite keeps for each of the object's own tables, by name. */
function layouts(name: string): Promise<Record<string, string>> {
  return runInDurableObject(stubOf(name), (_instance: VisitorDO, ctx) =>
    Object.fromEntries(
      ctx.storage.sql
        .exec<{ name: string; sql: string }>(
          "SELECT name, sql FROM sqlite_master WHERE name IN ('event', 'seen', 'meta', 'event_ts')",
        )
        .toArray()
        .map((row) => [row.name, row.sql]),
    ),
  );
}

describe("the rows a visitor's object writes", () => {
  it("two page views held in memory are written as one row each, plus one for the visitor's aggregates", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    for (let page = 0; page < 2; page++) await (await visit("/", { cookie })).arrayBuffer();

    await startCounting(visitorId);
    await writeHeldViews(visitorId);
    expect(await stopCounting(visitorId)).toBe(3);
  });

  it("a returning visitor's object with its page views stored is four 4 KB SQLite pages", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    for (let page = 0; page < 2; page++) await (await visit("/", { cookie })).arrayBuffer();
    await writeHeldViews(visitorId);
    // The flush arms the upkeep alarm, which the platform keeps in a table of its own.
    await vi.waitFor(async () =>
      expect(
        await runInDurableObject(stubOf(visitorId), (_i: VisitorDO, ctx) => ctx.storage.getAlarm()),
      ).not.toBeNull(),
    );
    // The schema's page, the log's, meta's and the platform's alarm metadata: what each of millions
    // of objects is billed for, a year and more.
    const size = await runInDurableObject(
      stubOf(visitorId),
      (_i: VisitorDO, ctx) => ctx.storage.sql.databaseSize,
    );
    expect(size).toBe(4 * 4096);
  });

  it("a returning visitor's event batch writes each event as one row, its log's", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    expect((await sendEvents(cookie, [{ id: eid(), type: "search", props: {} }])).status).toBe(202);
    const batch = (size: number) =>
      Array.from({ length: size }, () => ({ id: eid(), type: "product_view", props: { category: "trail" } }));

    await startCounting(visitorId);
    expect((await sendEvents(cookie, batch(1))).status).toBe(202);
    const one = await stopCounting(visitorId);
    await startCounting(visitorId);
    expect((await sendEvents(cookie, batch(5))).status).toBe(202);
    const five = await stopCounting(visitorId);
    // Each event more: its log row (the log answers for its id). The batch's aggregates and its
    // export lines' outbox row (written, then deleted once the queue took it) are the batch's.
    expect(five - one).toBe(4);
  });
});

describe("the upkeep", () => {
  it("writes no row when it wakes and finds nothing past the object's bounds", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    expect((await sendEvents(cookie, [{ id: eid(), type: "search", props: {} }])).status).toBe(202);

    await startCounting(visitorId);
    // The alarm the batch armed, rung now: its event is minutes old, nothing is let go.
    expect(await runDurableObjectAlarm(stubOf(visitorId))).toBe(true);
    expect(await stopCounting(visitorId)).toBe(0);
  });
});

describe("a new visitor's beacon first call", () => {
  it("sends its page view and its first page's exposure lines to the export as one queue message", async () => {
    const page = await visit("/");
    const html = await page.text();
    const cookie = visitorCookie(page);
    const firstPage = /data-first="([^"]*)"/
      .exec(html)?.[1]
      ?.replace(/&quot;/g, '"')
      .replace(/&amp;/g, "&");
    expect(firstPage).toBeDefined();
    const messages: ExportMessage[] = [];
    // The object (started here, before the call creates anything) sends through a recording queue.
    await runInDurableObject(stubOf(idOf(cookie)), (instance: VisitorDO) => {
      const recording = {
        async sendBatch(batch: Iterable<MessageSendRequest<ExportMessage>>) {
          for (const message of batch) messages.push(message.body);
        },
      } as unknown as Queue;
      const own = instance as unknown as { env: Env };
      own.env = Object.create(env, { EXPORT: { value: recording } }) as Env;
    });
    const event = { id: eid(), type: "page_view", props: { path: "/" } };
    const res = await visit("/_ns/v1/events", {
      method: "POST",
      headers: { cookie, "content-type": "text/plain;charset=UTF-8" },
      body: JSON.stringify({ sentAt: Date.now(), events: [event], firstPage }),
    });
    expect(res.status).toBe(202);

    await vi.waitFor(() => expect(messages).toHaveLength(1));
    const lines = [messages[0]!].flat();
    // The page view, and one exposure line per placement the first page showed (it depends on the
    // arms this visitor's id draws).
    const shown = (JSON.parse(firstPage!) as { shown: unknown[] }).shown.length;
    expect(shown).toBeGreaterThan(0);
    expect(lines.map((line) => line.kind).sort()).toEqual(["event", ...Array(shown).fill("exposure")]);
    expect(lines.find((line) => line.kind === "event")?.id).toBe(`event:${idOf(cookie)}:${event.id}`);
  });
});

describe("an object stored with the earlier rowid tables", () => {
  it("is rebuilt keyed when it starts, and reads back every event, remembered id and meta value", async () => {
    const name = `rowid-${eid()}`;
    const read = await runInDurableObject(stubOf(name), (_instance: VisitorDO, ctx) => {
      const sql = ctx.storage.sql;
      // The tables as they were stored before record 28 (rowid, the log indexed by time).
      for (const table of ["event", "seen", "meta"]) sql.exec(`DROP TABLE IF EXISTS ${table}`);
      sql.exec(`CREATE TABLE event (
        id TEXT PRIMARY KEY, ts INTEGER NOT NULL, type TEXT NOT NULL, channel TEXT NOT NULL, props TEXT NOT NULL)`);
      sql.exec("CREATE INDEX event_ts ON event (ts)");
      sql.exec("CREATE TABLE seen (id TEXT PRIMARY KEY, ts INTEGER NOT NULL)");
      sql.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      sql.exec(
        "INSERT INTO event VALUES ('e-2', 2000, 'add_to_cart', 'web', '{\"sku\":\"a\"}'), ('e-1', 1000, 'product_view', 'web', '{}')",
      );
      sql.exec("INSERT INTO seen VALUES ('e-1', 1000), ('e-2', 2000)");
      sql.exec("INSERT INTO meta VALUES ('id', ?), ('consent', '{\"personalization\":true}')", name);

      createTables(sql); // what the object does when it starts
      const held = loadHeld(sql);
      return {
        events: held.state.events.map((event) => [event.id, event.ts, event.type, event.props]),
        visitorId: held.state.visitorId,
        consent: held.consent,
        seen: sql
          .exec<{ id: string }>("SELECT id FROM seen ORDER BY id")
          .toArray()
          .map((row) => row.id),
      };
    });
    expect(read).toEqual({
      events: [
        ["e-1", 1000, "product_view", {}],
        ["e-2", 2000, "add_to_cart", { sku: "a" }],
      ],
      visitorId: name,
      consent: { personalization: true },
      seen: ["e-1", "e-2"],
    });
    const stored = await layouts(name);
    expect(Object.keys(stored).sort()).toEqual(["event", "meta", "seen"]);
    for (const layout of Object.values(stored)) expect(layout).toMatch(/WITHOUT ROWID$/);
  });
});

describe("an experiment shard stored with the earlier rowid tables", () => {
  it("is rebuilt keyed when it starts, and reads back its visitors' arms and goals", async () => {
    const shard = env.EXPERIMENTS.get(env.EXPERIMENTS.idFromName(`rowid-shard-${eid()}`));
    const rows = await runInDurableObject(shard, async (_instance: ExperimentDO, ctx) => {
      const sql = ctx.storage.sql;
      for (const table of ["exposure", "goal_conversion", "adopted", "meta"]) sql.exec(`DROP TABLE ${table}`);
      // The tables as they were stored before record 28.
      sql.exec(`CREATE TABLE exposure (
        visitor TEXT PRIMARY KEY, variant TEXT NOT NULL, at INTEGER NOT NULL, converted_at INTEGER)`);
      sql.exec(`CREATE TABLE goal_conversion (visitor TEXT NOT NULL, goal TEXT NOT NULL,
        first_at INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (visitor, goal))`);
      sql.exec(
        "CREATE TABLE adopted (source TEXT NOT NULL, into_visitor TEXT NOT NULL, PRIMARY KEY (source, into_visitor))",
      );
      sql.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      sql.exec("INSERT INTO exposure VALUES ('v-a', 'bold', 1000, NULL), ('v-b', 'control', 2000, NULL)");
      sql.exec("INSERT INTO goal_conversion VALUES ('v-a', 'purchase', 3000, 84.5)");
      sql.exec("INSERT INTO meta VALUES ('homed', '1')");

      // What the shard does when it starts, on the same storage.
      const started = new ExperimentDO(ctx, env as Env);
      const layouts = sql
        .exec<{ sql: string }>(
          "SELECT sql FROM sqlite_master WHERE type = 'table' AND name IN ('exposure', 'goal_conversion', 'adopted', 'meta')",
        )
        .toArray()
        .map((row) => row.sql);
      return { layouts, read: await started.rows(["v-a", "v-b"]) };
    });
    expect(rows.layouts).toHaveLength(4);
    for (const layout of rows.layouts) expect(layout).toMatch(/WITHOUT ROWID$/);
    expect(rows.read).toEqual([
      {
        visitorId: "v-a",
        variant: "bold",
        exposedAt: 1000,
        convertedAt: 3000,
        goals: { purchase: { firstAt: 3000, value: 84.5 } },
      },
      { visitorId: "v-b", variant: "control", exposedAt: 2000, convertedAt: null, goals: {} },
    ]);
  });
});
