import * as z from "zod";
import type { Millis } from "../core/model.ts";
import { lazyTable } from "./lazy-tables.ts";
import { parseStored } from "./stored-value.ts";

/**
 * The journeys a person is in, on their visitor's object (docs/storage.md): one row per entry (the
 * Workflows instance that runs it and the step it is on), one row per message reserved (its
 * idempotency key, channel and outcome), and a short log of what each entry did and why, which the
 * admin API explains from. In the object rather than in KV because a reservation must be atomic: two
 * retries of the same step, or two journeys sending at once, must not both pass the frequency cap.
 * Each table is created by its first write (lazy-tables.ts): most visitors never enter a journey.
 */

export const ENTRY_STATUSES = ["running", "ended", "cancelled"] as const;
const EntryRowSchema = z.object({
  instance: z.string(),
  journey: z.string(),
  entered_at: z.number(),
  status: z.enum(ENTRY_STATUSES),
  step: z.string(),
  reason: z.string(),
  updated_at: z.number(),
});
export type EntryRow = z.infer<typeof EntryRowSchema>;

export const SEND_OUTCOMES = ["reserved", "delivered", "refused"] as const;
const SendRowSchema = z.object({
  key: z.string(),
  instance: z.string(),
  journey: z.string(),
  step: z.string(),
  at: z.number(),
  channel: z.string().nullable(),
  outcome: z.enum(SEND_OUTCOMES),
  reason: z.string(),
});
export type SendRow = z.infer<typeof SendRowSchema>;

const LogRowSchema = z.object({
  instance: z.string(),
  step: z.string(),
  at: z.number(),
  what: z.string(),
  detail: z.string(),
});
export type LogRow = z.infer<typeof LogRowSchema>;

/** Log rows kept per entry: enough to explain a journey, bounded whatever it does. */
const LOG_LIMIT_PER_ENTRY = 50;

const entryTable = lazyTable("journey_entry", (sql) => {
  sql.exec(`CREATE TABLE IF NOT EXISTS journey_entry (
      instance TEXT PRIMARY KEY, journey TEXT NOT NULL, entered_at INTEGER NOT NULL, status TEXT NOT NULL,
      step TEXT NOT NULL, reason TEXT NOT NULL, updated_at INTEGER NOT NULL)`);
  sql.exec("CREATE INDEX IF NOT EXISTS journey_entry_journey ON journey_entry (journey, entered_at)");
});
const sendTable = lazyTable("journey_send", (sql) => {
  sql.exec(`CREATE TABLE IF NOT EXISTS journey_send (
      key TEXT PRIMARY KEY, instance TEXT NOT NULL, journey TEXT NOT NULL, step TEXT NOT NULL, at INTEGER NOT NULL,
      channel TEXT, outcome TEXT NOT NULL, reason TEXT NOT NULL)`);
  sql.exec("CREATE INDEX IF NOT EXISTS journey_send_at ON journey_send (at)");
});
const logTable = lazyTable("journey_log", (sql) => {
  sql.exec(`CREATE TABLE IF NOT EXISTS journey_log (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT NOT NULL, step TEXT NOT NULL, at INTEGER NOT NULL,
      what TEXT NOT NULL, detail TEXT NOT NULL)`);
  sql.exec("CREATE INDEX IF NOT EXISTS journey_log_instance ON journey_log (instance, seq)");
});

const rows = <T>(schema: z.ZodType<T>, cursor: Iterable<unknown>, what: string): T[] => {
  const out: T[] = [];
  for (const row of cursor) {
    const parsed = parseStored(schema, row, what);
    if (parsed !== undefined) out.push(parsed);
  }
  return out;
};

export function readEntry(sql: SqlStorage, instance: string): EntryRow | null {
  return (
    rows(
      EntryRowSchema,
      entryTable.query(sql, "SELECT * FROM journey_entry WHERE instance = ?", instance),
      "journey_entry",
    )[0] ?? null
  );
}

/** The latest entry of one journey: what the re-entry rule reads. */
export function latestEntry(sql: SqlStorage, journey: string): EntryRow | null {
  return (
    rows(
      EntryRowSchema,
      entryTable.query(
        sql,
        "SELECT * FROM journey_entry WHERE journey = ? ORDER BY entered_at DESC LIMIT 1",
        journey,
      ),
      "journey_entry",
    )[0] ?? null
  );
}

export function runningEntries(sql: SqlStorage): EntryRow[] {
  return rows(
    EntryRowSchema,
    entryTable.query(sql, "SELECT * FROM journey_entry WHERE status = 'running' ORDER BY entered_at"),
    "journey_entry",
  );
}

export function allEntries(sql: SqlStorage): EntryRow[] {
  return rows(
    EntryRowSchema,
    entryTable.query(sql, "SELECT * FROM journey_entry ORDER BY entered_at"),
    "journey_entry",
  );
}

export function insertEntry(sql: SqlStorage, entry: EntryRow): void {
  entryTable.write(
    sql,
    "INSERT OR IGNORE INTO journey_entry (instance, journey, entered_at, status, step, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    entry.instance,
    entry.journey,
    entry.entered_at,
    entry.status,
    entry.step,
    entry.reason,
    entry.updated_at,
  );
}

export function updateEntry(
  sql: SqlStorage,
  instance: string,
  change: { status?: EntryRow["status"]; step?: string; reason?: string; at: Millis },
): void {
  const entry = readEntry(sql, instance);
  if (!entry) return;
  entryTable.query(
    sql,
    "UPDATE journey_entry SET status = ?, step = ?, reason = ?, updated_at = ? WHERE instance = ?",
    change.status ?? entry.status,
    change.step ?? entry.step,
    change.reason ?? entry.reason,
    change.at,
    instance,
  );
}

export function readSend(sql: SqlStorage, key: string): SendRow | null {
  return (
    rows(
      SendRowSchema,
      sendTable.query(sql, "SELECT * FROM journey_send WHERE key = ?", key),
      "journey_send",
    )[0] ?? null
  );
}

export function insertSend(sql: SqlStorage, send: SendRow): void {
  sendTable.write(
    sql,
    "INSERT OR REPLACE INTO journey_send (key, instance, journey, step, at, channel, outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    send.key,
    send.instance,
    send.journey,
    send.step,
    send.at,
    send.channel,
    send.outcome,
    send.reason,
  );
}

export function markDelivered(sql: SqlStorage, key: string): void {
  sendTable.query(sql, "UPDATE journey_send SET outcome = 'delivered' WHERE key = ?", key);
}

/** Messages reserved or delivered since `since`, across every journey: what the frequency cap counts. */
export function sendsSince(sql: SqlStorage, since: Millis): number {
  const row = sendTable.query(
    sql,
    "SELECT COUNT(*) AS n FROM journey_send WHERE at > ? AND outcome != 'refused'",
    since,
  )[0];
  return Number(row?.n ?? 0);
}

export function sendsOf(sql: SqlStorage, instance: string): SendRow[] {
  return rows(
    SendRowSchema,
    sendTable.query(sql, "SELECT * FROM journey_send WHERE instance = ? ORDER BY at", instance),
    "journey_send",
  );
}

export function addLog(sql: SqlStorage, row: LogRow): void {
  logTable.write(
    sql,
    "INSERT INTO journey_log (instance, step, at, what, detail) VALUES (?, ?, ?, ?, ?)",
    row.instance,
    row.step,
    row.at,
    row.what,
    row.detail,
  );
  logTable.query(
    sql,
    "DELETE FROM journey_log WHERE instance = ? AND seq NOT IN (SELECT seq FROM journey_log WHERE instance = ? ORDER BY seq DESC LIMIT ?)",
    row.instance,
    row.instance,
    LOG_LIMIT_PER_ENTRY,
  );
}

export function logOf(sql: SqlStorage, instance: string): LogRow[] {
  return rows(
    LogRowSchema,
    logTable.query(
      sql,
      "SELECT instance, step, at, what, detail FROM journey_log WHERE instance = ? ORDER BY seq",
      instance,
    ),
    "journey_log",
  );
}

/** Every journey row one object holds: what a merge hands to the known person's object. */
export const JourneyRowsSchema = z.object({
  entries: z.array(EntryRowSchema),
  sends: z.array(SendRowSchema),
  log: z.array(LogRowSchema),
});
export type JourneyRows = z.infer<typeof JourneyRowsSchema>;

export function journeyRows(sql: SqlStorage): JourneyRows {
  return {
    entries: allEntries(sql),
    sends: rows(
      SendRowSchema,
      sendTable.query(sql, "SELECT * FROM journey_send ORDER BY at"),
      "journey_send",
    ),
    log: rows(
      LogRowSchema,
      logTable.query(sql, "SELECT instance, step, at, what, detail FROM journey_log ORDER BY seq"),
      "journey_log",
    ),
  };
}

/**
 * A merged visitor's journeys, folded into the person's (idempotent: an entry already here is
 * skipped with its rows). Their entries, messages and logs are the person's from now on: the
 * frequency cap counts the messages, the re-entry rule the entries. When both were running the same
 * journey, the person's own entry goes on and the visitor's is ended here (`merged`): answers the
 * instances to stop.
 */
export function foldJourneys(sql: SqlStorage, source: JourneyRows, from: string, now: Millis): string[] {
  const moved = new Set<string>();
  const stop: string[] = [];
  for (const entry of source.entries) {
    if (readEntry(sql, entry.instance)) continue;
    const kept =
      entry.status === "running"
        ? rows(
            EntryRowSchema,
            entryTable.query(
              sql,
              "SELECT * FROM journey_entry WHERE journey = ? AND status = 'running' LIMIT 1",
              entry.journey,
            ),
            "journey_entry",
          )[0]
        : undefined;
    moved.add(entry.instance);
    if (kept) {
      stop.push(entry.instance);
      insertEntry(sql, {
        ...entry,
        status: "ended",
        reason: `merged: the person was already in this journey (${kept.instance})`,
        updated_at: now,
      });
    } else insertEntry(sql, entry);
  }
  for (const send of source.sends) {
    if (moved.has(send.instance) && !readSend(sql, send.key)) insertSend(sql, send);
  }
  for (const line of source.log) if (moved.has(line.instance)) addLog(sql, line);
  for (const instance of moved) {
    const ended = stop.includes(instance);
    addLog(sql, {
      instance,
      step: readEntry(sql, instance)?.step ?? "",
      at: now,
      what: ended ? "ended" : "moved",
      detail: ended ? "merged: a duplicate of the person's own entry" : `from ${from} at login`,
    });
  }
  return stop;
}

/** Withdrawn personalization consent: the journeys' history goes with the behaviour. */
export function deleteJourneys(sql: SqlStorage): void {
  entryTable.query(sql, "DELETE FROM journey_entry");
  sendTable.query(sql, "DELETE FROM journey_send");
  logTable.query(sql, "DELETE FROM journey_log");
}

/** One entry as the admin API shows it: where it is, what it sent, and what it did and why. */
export interface JourneyView {
  readonly instance: string;
  readonly journey: string;
  readonly enteredAt: Millis;
  readonly status: "running" | "ended" | "cancelled";
  readonly step: string;
  readonly reason: string;
  readonly updatedAt: Millis;
  readonly messages: ReadonlyArray<{
    readonly key: string;
    readonly step: string;
    readonly at: Millis;
    readonly channel: string | null;
    readonly outcome: "reserved" | "delivered" | "refused";
    readonly reason: string;
  }>;
  readonly log: ReadonlyArray<{
    readonly step: string;
    readonly at: Millis;
    readonly what: string;
    readonly detail: string;
  }>;
}

/** Every entry the object holds, as the admin API and the profile export show it. */
export function journeyViews(sql: SqlStorage): JourneyView[] {
  return allEntries(sql).map((entry) => ({
    instance: entry.instance,
    journey: entry.journey,
    enteredAt: entry.entered_at,
    status: entry.status,
    step: entry.step,
    reason: entry.reason,
    updatedAt: entry.updated_at,
    messages: sendsOf(sql, entry.instance).map((send) => ({
      key: send.key,
      step: send.step,
      at: send.at,
      channel: send.channel,
      outcome: send.outcome,
      reason: send.reason,
    })),
    log: logOf(sql, entry.instance).map(({ step, at, what, detail }) => ({ step, at, what, detail })),
  }));
}
