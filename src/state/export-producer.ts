import type { Env } from "../platform/env.ts";
import type { ExportMessage, ExportRecord } from "./export-record.ts";
import { recordDroppedWrite } from "./stored-value.ts";

/**
 * Puts acknowledged facts on the EXPORT queue (docs/export.md). Called only after the fact is
 * durable (an event's transaction committed, a link or an erasure done), and only for what the
 * privacy gate lets be measured: the caller asks the gate, this module only sends. The visitor's
 * object sends through its outbox (export-outbox.ts), so a refused send is tried again.
 */

/**
 * Queues bills an operation per 64 KB of a message written, read and deleted: records go together,
 * a message of at most MESSAGE_BYTES (UTF-8, its JSON array) each, instead of one message each.
 */
const MESSAGE_BYTES = 60_000;
/** A sendBatch takes at most 256 KB: a chunk of records stays under it, packed as it may be. */
export const CHUNK_BYTES = 180_000;
const encoder = new TextEncoder();
/** A send this short (a page's view and exposures, a beacon batch) is checked whole first. */
const FEW = 32;

/** One record's size in a message: its JSON's UTF-8 bytes and the comma after it. */
function sizeOf(record: ExportRecord): number {
  return encoder.encode(JSON.stringify(record)).length + 1;
}

/**
 * The records packed into sendBatch chunks of queue messages, each record sized once: greedy
 * messages of at most MESSAGE_BYTES (a larger record goes alone), greedy chunks of at most
 * CHUNK_BYTES of messages. A page's few lines are one message of one chunk, known from their JSON's
 * length alone (a UTF-16 code unit is at most 3 UTF-8 bytes), without encoding anything.
 */
function packed(records: readonly ExportRecord[]): ExportMessage[][] {
  if (records.length === 0) return [];
  // A bulk send seldom fits one message, and would pay for a JSON it then throws away.
  if (records.length <= FEW && JSON.stringify(records).length * 3 <= MESSAGE_BYTES) return [[[...records]]];
  const sized = records.map((record) => ({ record, bytes: sizeOf(record) }));
  // A message's bytes: its records' and the array's brackets.
  const messages = greedyRuns(sized, (one) => one.bytes, MESSAGE_BYTES - 2).map((run) => ({
    message: run.map((one) => one.record),
    bytes: run.reduce((sum, one) => sum + one.bytes, 2),
  }));
  return greedyRuns(messages, (one) => one.bytes, CHUNK_BYTES).map((run) => run.map((one) => one.message));
}

/**
 * Greedy runs of `items` in their order, each of at most `limit` by `size` (an item larger than the
 * limit goes alone): records into queue messages, messages (or the outbox's rows) into sendBatches.
 */
export function greedyRuns<T>(items: readonly T[], size: (item: T) => number, limit: number): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const n = size(item);
    if (run.length > 0 && bytes + n > limit) {
      runs.push(run);
      run = [];
      bytes = 0;
    }
    run.push(item);
    bytes += n;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** The records as queue messages of at most MESSAGE_BYTES each (the outbox keeps one per row). */
export function messagesOf(records: readonly ExportRecord[]): ExportMessage[] {
  return packed(records).flat();
}

/** Sends the records, one sendBatch per chunk (one for any ordinary ingest); rejects if a send fails. */
export async function sendExport(env: Pick<Env, "EXPORT">, records: readonly ExportRecord[]): Promise<void> {
  for (const chunk of packed(records)) await sendMessages(env, chunk);
}

/** Messages already packed (the outbox's rows), in one sendBatch: at most 100, within CHUNK_BYTES. */
export async function sendMessages(
  env: Pick<Env, "EXPORT">,
  messages: readonly ExportMessage[],
): Promise<void> {
  await env.EXPORT.sendBatch(messages.map((body) => ({ body, contentType: "json" as const })));
}

/** Sends tried by the worker before it gives up on them (a transient refusal costs nothing). */
const BACKGROUND_ATTEMPTS = 3;

/**
 * The same, for a caller that keeps the promise alive itself (ctx.waitUntil): each chunk is tried up
 * to three times, and one the queue still refuses is logged and counted (`export_not_sent`), never
 * silent. Never rejects.
 */
export async function sendExportRetrying(
  env: Pick<Env, "EXPORT">,
  records: readonly ExportRecord[],
): Promise<void> {
  for (const chunk of packed(records)) {
    for (let attempt = 1; ; attempt++) {
      try {
        await sendMessages(env, chunk);
        break;
      } catch (err) {
        if (attempt < BACKGROUND_ATTEMPTS) continue;
        recordDroppedWrite("export_not_sent", err);
        break;
      }
    }
  }
}
