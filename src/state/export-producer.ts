import type { Env } from "../platform/env.ts";
import type { ExportRecord } from "./export-record.ts";
import { recordDroppedWrite } from "./stored-value.ts";

/**
 * Puts acknowledged facts on the EXPORT queue (docs/export.md). Called only after the fact is
 * durable (an event's transaction committed, a link or an erasure done), and only for what the
 * privacy gate lets be measured: the caller asks the gate, this module only sends. The visitor's
 * object sends through its outbox (export-outbox.ts), so a refused send is tried again.
 */

/** Queues takes at most 100 messages and 256 KB per sendBatch; a chunk stays under both. */
const MAX_MESSAGES = 100;
const MAX_BYTES = 200_000;

/** The records in sendBatch-sized chunks (an event is at most 32 KB, so every record fits one). */
export function chunksOf(records: readonly ExportRecord[]): ExportRecord[][] {
  const chunks: ExportRecord[][] = [];
  let chunk: ExportRecord[] = [];
  let bytes = 0;
  for (const record of records) {
    const size = JSON.stringify(record).length * 2; // UTF-16 length bounds UTF-8 bytes from above
    if (chunk.length === MAX_MESSAGES || (chunk.length > 0 && bytes + size > MAX_BYTES)) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(record);
    bytes += size;
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
}

/** Sends the records, one sendBatch per chunk (one for any ordinary ingest); rejects if a send fails. */
export async function sendExport(env: Pick<Env, "EXPORT">, records: readonly ExportRecord[]): Promise<void> {
  for (const chunk of chunksOf(records))
    await env.EXPORT.sendBatch(chunk.map((body) => ({ body, contentType: "json" as const })));
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
