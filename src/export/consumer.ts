import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { type ExportRecord, ExportRecordSchema } from "../state/export-record.ts";
import { fileKey, gzipNdjson, partitionOf } from "./files.ts";

/**
 * The EXPORT queue's consumer: a batch of records becomes one gzip NDJSON file per partition in
 * R2 (src/export/files.ts), each record once (deduplicated by id within the batch). Delivery is
 * at-least-once: a message is acknowledged only after the file holding it is written, and one
 * whose file could not be written is retried (after `max_retries`, the dead-letter queue keeps
 * it). A redelivered message can land in a second file, so readers deduplicate by id
 * (docs/export.md shows the SQL).
 */

interface PartitionFile {
  readonly records: ExportRecord[];
  /** Every message whose record the file holds, duplicates included: acknowledged together. */
  readonly messages: Message[];
}

/** The batch's valid records grouped by partition, one per id; a message that is no record is retried. */
function sortBatch(messages: readonly Message[]): Map<string, PartitionFile> {
  const files = new Map<string, PartitionFile>();
  const fileOfId = new Map<string, PartitionFile>();
  let invalid = 0;
  for (const message of messages) {
    const parsed = ExportRecordSchema.safeParse(message.body);
    if (!parsed.success) {
      // Never written as it is: retried until the dead-letter queue keeps it for inspection.
      invalid++;
      message.retry();
      continue;
    }
    const seenIn = fileOfId.get(parsed.data.id);
    if (seenIn) {
      seenIn.messages.push(message);
      continue;
    }
    const partition = partitionOf(parsed.data);
    let file = files.get(partition);
    if (!file) {
      file = { records: [], messages: [] };
      files.set(partition, file);
    }
    file.records.push(parsed.data);
    file.messages.push(message);
    fileOfId.set(parsed.data.id, file);
  }
  if (invalid) log("error", "export_message_invalid", { count: invalid });
  return files;
}

/** Writes one file per partition; acknowledges what was written and retries the rest. */
export async function consumeExport(batch: MessageBatch, env: Pick<Env, "EXPORT_BUCKET">): Promise<void> {
  const files = sortBatch(batch.messages);
  const written = await Promise.allSettled(
    [...files].map(async ([partition, file]) => {
      const key = await fileKey(
        partition,
        file.records.map((record) => record.id),
      );
      await env.EXPORT_BUCKET.put(key, await gzipNdjson(file.records), {
        httpMetadata: { contentType: "application/gzip" },
        customMetadata: { lines: String(file.records.length) },
      });
      for (const message of file.messages) message.ack();
    }),
  );
  const entries = [...files.values()];
  const failed = entries.filter((_, i) => written[i]!.status === "rejected");
  if (failed.length === 0) return;
  // Written files' messages stay acknowledged; the rest are delivered again (a new file, same ids).
  for (const file of failed) for (const message of file.messages) message.retry();
  const reason = written.find((outcome) => outcome.status === "rejected") as PromiseRejectedResult;
  log("error", "export_file_not_written", { files: failed.length, error: String(reason.reason) });
}
