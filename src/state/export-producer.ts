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

/** One record's size in a message: its JSON's UTF-8 bytes and the comma after it. */
function sizeOf(record: ExportRecord): number {
  return encoder.encode(JSON.stringify(record)).length + 1;
}

/** Greedy runs of `records`, each at most `limit` bytes by `sizeOf` (a larger record goes alone). */
function runsOf(records: readonly ExportRecord[], limit: number): ExportRecord[][] {
  const runs: ExportRecord[][] = [];
  let run: ExportRecord[] = [];
  let bytes = 2; // the array's brackets
  for (const record of records) {
    const size = sizeOf(record);
    if (run.length > 0 && bytes + size > limit) {
      runs.push(run);
      run = [];
      bytes = 2;
    }
    run.push(record);
    bytes += size;
  }
  if (run.length) runs.push(run);
  return runs;
}

/** The records in sendBatch-sized chunks (an event is at most 32 KB, so every record fits one). */
export function chunksOf(records: readonly ExportRecord[]): ExportRecord[][] {
  return runsOf(records, CHUNK_BYTES);
}

/** One chunk's queue messages: its records packed into messages of at most MESSAGE_BYTES. */
export function messagesOf(chunk: readonly ExportRecord[]): ExportMessage[] {
  return runsOf(chunk, MESSAGE_BYTES);
}

/** Sends the records, one sendBatch per chunk (one for any ordinary ingest); rejects if a send fails. */
export async function sendExport(env: Pick<Env, "EXPORT">, records: readonly ExportRecord[]): Promise<void> {
  for (const chunk of chunksOf(records)) await sendMessages(env, messagesOf(chunk));
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
  for (const chunk of chunksOf(records)) {
    for (let attempt = 1; ; attempt++) {
      try {
        await sendExport(env, chunk);
        break;
      } catch (err) {
        if (attempt < BACKGROUND_ATTEMPTS) continue;
        recordDroppedWrite("export_not_sent", err);
        break;
      }
    }
  }
}
