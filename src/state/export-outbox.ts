import * as z from "zod";
import type { Millis } from "../core/model.ts";
import { withDeadline } from "../platform/deadline.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { CHUNK_BYTES, greedyRuns, messagesOf, sendMessages } from "./export-producer.ts";
import {
  type ExportMessage,
  ExportMessageSchema,
  type ExportRecord,
  ExportRecordSchema,
} from "./export-record.ts";
import { lazyTable } from "./lazy-tables.ts";
import { parseStoredJson, recordDroppedWrite } from "./stored-value.ts";

/**
 * The visitor object's export outbox (docs/export.md, "Delivery"): the lines of the facts it
 * acknowledges are written as rows in the same storage transaction as the facts themselves, so
 * what was acknowledged is queued for export, atomically. A row is sent after the answer and
 * deleted only once the EXPORT queue accepted it; what the queue refused waits for the object's
 * alarm, which tries again with backoff. A row holds the lines of one send, packed as one queue
 * message (up to 60 KB): its insert and its delete are one row written each, whatever the number of
 * lines (docs/decisions.md, record 28). The outbox is bounded (rows and age): what goes past the
 * bound is deleted, logged and counted (`write_dropped`, reasons `export_outbox_full` and
 * `export_outbox_expired`), never silent.
 */

/**
 * Rows one visitor may hold unsent: a thousand sends (a batch's lines, a message's, a delivery's),
 * far past an ordinary outage's backlog; the age bound below comes first for a steady visitor.
 */
export const OUTBOX_MAX_ROWS = 1000;
/** A row not accepted in this long is dropped: a queue down for days is an incident, not a retry. */
export const OUTBOX_MAX_AGE_MS = 3 * 86_400_000;
/** The alarm's backoff after a refused send: 30 s, doubling, at most 15 minutes apart. */
const RETRY_FIRST_MS = 30_000;
const RETRY_MAX_MS = 15 * 60_000;
/**
 * A send the queue has not answered in this long counts as refused: the rows stay for the alarm. If
 * the queue took it after all, the retry sends its lines again, which the export's ids deduplicate.
 */
export const SEND_DEADLINE_MS = 5000;
const encoder = new TextEncoder();
/** Rows read per send: Queues takes at most 100 messages per sendBatch. */
const PAGE_ROWS = 100;

/** When the alarm tries again after `failures` refused sends in a row (1 → 30 s, then doubling). */
export function retryDelay(failures: number): Millis {
  return Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.max(0, Math.min(failures - 1, 10)));
}

/** The seqs a write added: the rows the send right after it tries. */
export interface SeqRange {
  readonly from: number;
  readonly to: number;
}

/**
 * Created by the first line queued: most visitors' lines are accepted at once, and never wait here.
 * `seq` is the rowid, without AUTOINCREMENT (its counter is a table of its own and a row written per
 * insert): a seq may be given again once the newest rows are gone, which only a send that took them
 * does, and sends never overlap. Outboxes created before keep their AUTOINCREMENT, which reads the same.
 */
const outboxTable = lazyTable("outbox", (sql) =>
  sql.exec(
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL)",
  ),
);

/**
 * One `outbox` row as SQLite gives it back; `body` is a queue message as JSON text: the lines of one
 * send as an array, or one line alone (rows written before record 28).
 */
const OutboxRowSchema = z.object({ seq: z.number(), body: z.string() });

/**
 * Writes the records as outbox rows (call it inside the transaction that stores their facts).
 * Past OUTBOX_MAX_ROWS the oldest rows go, counted as `export_outbox_full`.
 */
export function enqueueExport(
  sql: SqlStorage,
  records: readonly ExportRecord[],
  now: Millis,
): SeqRange | null {
  // A line the consumer would refuse never reaches the queue; nor does it undo its fact's transaction.
  const lines: ExportRecord[] = [];
  for (const record of records) {
    const line = ExportRecordSchema.safeParse(record);
    if (line.success) lines.push(line.data);
    else recordDroppedWrite("export_line_invalid", line.error.issues[0]?.message ?? "invalid");
  }
  if (lines.length === 0) return null;
  let from = Number.POSITIVE_INFINITY;
  let to = 0;
  for (const message of messagesOf(lines)) {
    const row = outboxTable
      .write<{ seq: number }>(
        sql,
        "INSERT INTO outbox (at, body) VALUES (?, ?) RETURNING seq",
        now,
        JSON.stringify(message),
      )
      .one();
    from = Math.min(from, row.seq);
    to = Math.max(to, row.seq);
  }
  const dropped = outboxTable.query(
    sql,
    "DELETE FROM outbox WHERE seq NOT IN (SELECT seq FROM outbox ORDER BY seq DESC LIMIT ?) RETURNING seq",
    OUTBOX_MAX_ROWS,
  ).length;
  if (dropped > 0)
    recordDroppedWrite("export_outbox_full", `${dropped} sends' export lines over ${OUTBOX_MAX_ROWS} sends`);
  return { from, to };
}

/** Deletes rows older than OUTBOX_MAX_AGE_MS, counted as `export_outbox_expired`. */
export function dropExpired(sql: SqlStorage, now: Millis): number {
  const dropped = outboxTable.query(
    sql,
    "DELETE FROM outbox WHERE at < ? RETURNING seq",
    now - OUTBOX_MAX_AGE_MS,
  ).length;
  if (dropped > 0)
    recordDroppedWrite("export_outbox_expired", `${dropped} sends' export lines unsent for 3 days`);
  return dropped;
}

/** How many sends' rows wait to be sent. */
export function pendingExports(sql: SqlStorage): number {
  return outboxTable.query<{ n: number }>(sql, "SELECT COUNT(*) AS n FROM outbox")[0]?.n ?? 0;
}

/**
 * Sends the rows of `range` (every row when absent), oldest first, deleting each chunk once the
 * queue accepted it. Stops at the first refusal and answers false: the rest stay for the alarm.
 * `gone()` says the object was erased meanwhile: its rows went with it, nothing more is read.
 */
export async function sendOutbox(
  sql: SqlStorage,
  env: Pick<Env, "EXPORT">,
  range: SeqRange | null,
  gone: () => boolean,
): Promise<boolean> {
  let after = range ? range.from - 1 : 0;
  const last = range ? range.to : Number.MAX_SAFE_INTEGER;
  for (;;) {
    if (gone()) return true;
    const page = readPage(sql, after, last);
    if (page.rows.length === 0) return true;
    after = page.rows[page.rows.length - 1]!.seq;
    // Each row is the message it was packed as, and whole rows go per sendBatch: a row is deleted
    // only once the message holding all its lines was accepted.
    // Greedy runs of whole rows, each within one sendBatch (a row is at most one 60 KB message).
    for (const chunk of greedyRuns(page.rows, (row) => row.bytes, CHUNK_BYTES)) {
      const messages = chunk.map((row) => row.message);
      const sent = await withDeadline(() => sendMessages(env, messages), SEND_DEADLINE_MS);
      if (!sent.ok) {
        log("warn", "export_deferred", {
          lines: messages.reduce((n, message) => n + (Array.isArray(message) ? message.length : 1), 0),
          error: sent.reason === "error" ? sent.error : `no answer in ${SEND_DEADLINE_MS} ms`,
        });
        return false;
      }
      if (gone()) return true;
      for (const row of chunk) outboxTable.query(sql, "DELETE FROM outbox WHERE seq = ?", row.seq);
    }
  }
}

interface OutboxRow {
  readonly seq: number;
  /** Its lines, as the queue message they were packed as (a bare line in rows written before record 28). */
  readonly message: ExportMessage;
  /** The body's UTF-8 bytes: what the row adds to a sendBatch. */
  readonly bytes: number;
}

/** Up to PAGE_ROWS rows after `after`; a row that does not parse is logged, counted and deleted. */
function readPage(sql: SqlStorage, after: number, last: number): { rows: OutboxRow[] } {
  const rows: OutboxRow[] = [];
  const raw = outboxTable.query(
    sql,
    "SELECT seq, body FROM outbox WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
    after,
    last,
    PAGE_ROWS,
  );
  for (const one of raw) {
    const row = OutboxRowSchema.safeParse(one);
    const message = row.success
      ? parseStoredJson(ExportMessageSchema, row.data.body, "outbox.body")
      : undefined;
    if (!row.success || !message) {
      // Written by the schema that reads it, so only damage gets here: it can never be sent.
      if (row.success) outboxTable.query(sql, "DELETE FROM outbox WHERE seq = ?", row.data.seq);
      recordDroppedWrite("export_outbox_invalid", "an outbox row that does not parse");
      continue;
    }
    rows.push({
      seq: row.data.seq,
      message,
      bytes: encoder.encode(row.data.body).length,
    });
  }
  // A page of only damaged rows must still move on: the next read starts after them.
  if (rows.length === 0 && raw.length > 0) {
    const lastSeq = OutboxRowSchema.safeParse(raw[raw.length - 1]);
    if (lastSeq.success) return readPage(sql, lastSeq.data.seq, last);
  }
  return { rows };
}
