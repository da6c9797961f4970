import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { ExportMessageSchema, type ExportRecord } from "../state/export-record.ts";
import { fileKey, gzipNdjson, partitionOf } from "./files.ts";

/**
 * The EXPORT queue's consumer: a batch of messages, each one or several records, becomes one gzip
 * NDJSON file per partition in R2 (src/export/files.ts), each record once (deduplicated by id within
 * the batch). Delivery is at-least-once: a message is acknowledged only after every file holding
 * its records is written, and one with a file that could not be written is retried (after `max_retries`, the dead-letter queue keeps
 * it). A redelivered message can land in a second file, so readers deduplicate by id
 * (docs/export.md shows the SQL).
 */

interface PartitionFile {
  readonly records: ExportRecord[];
  /** Set once the file is in R2. */
  written: boolean;
}

interface SortedBatch {
  readonly files: Map<string, PartitionFile>;
  /** Each valid message and the files holding its records (a record seen before: that file). */
  readonly holders: ReadonlyArray<{ readonly message: Message; readonly files: Set<PartitionFile> }>;
}

/**
 * The batch's valid records grouped by partition, one per id; a message that is no export message
 * (one record, or several sent together) is retried.
 */
function sortBatch(messages: readonly Message[]): SortedBatch {
  const files = new Map<string, PartitionFile>();
  const fileOfId = new Map<string, PartitionFile>();
  const holders: Array<{ message: Message; files: Set<PartitionFile> }> = [];
  let invalid = 0;
  for (const message of messages) {
    const parsed = ExportMessageSchema.safeParse(message.body);
    if (!parsed.success) {
      // Never written as it is: retried until the dead-letter queue keeps it for inspection.
      invalid++;
      message.retry();
      continue;
    }
    const held = new Set<PartitionFile>();
    for (const record of Array.isArray(parsed.data) ? parsed.data : [parsed.data]) {
      let file = fileOfId.get(record.id);
      if (!file) {
        const partition = partitionOf(record);
        file = files.get(partition);
        if (!file) {
          file = { records: [], written: false };
          files.set(partition, file);
        }
        file.records.push(record);
        fileOfId.set(record.id, file);
      }
      held.add(file);
    }
    holders.push({ message, files: held });
  }
  if (invalid) log("error", "export_message_invalid", { count: invalid });
  return { files, holders };
}

/**
 * Writes one file per partition; acknowledges each message whose records are all written, and
 * retries the others (a message's records can span partitions: a page's view and its exposures).
 */
export async function consumeExport(batch: MessageBatch, env: Pick<Env, "EXPORT_BUCKET">): Promise<void> {
  const { files, holders } = sortBatch(batch.messages);
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
      file.written = true;
    }),
  );
  // Written files' records stay; the rest are delivered again (a new file, same ids).
  for (const { message, files: held } of holders) {
    if ([...held].every((file) => file.written)) message.ack();
    else message.retry();
  }
  const failed = written.filter((outcome) => outcome.status === "rejected");
  if (failed.length === 0) return;
  const reason = failed[0] as PromiseRejectedResult;
  log("error", "export_file_not_written", { files: failed.length, error: String(reason.reason) });
}
