// The export's files read back from the test runtime's bucket, each line parsed with the schema that
// wrote it (so every line a test reads is validated). The queue delivers in its own time, so tests
// poll for the lines they expect (vi.waitFor) instead of asserting at a given time.
import { env } from "cloudflare:workers";
import { vi } from "vitest";
import { gunzipLines } from "../../src/export/files.ts";
import { type ExportRecord, ExportRecordSchema } from "../../src/state/export-record.ts";

/** Every line of every export file, each parsed with the schema that wrote it. */
export async function allLines(): Promise<ExportRecord[]> {
  const records: ExportRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.EXPORT_BUCKET.list({ cursor });
    for (const object of page.objects) {
      const body = await env.EXPORT_BUCKET.get(object.key);
      for (const line of await gunzipLines(await body!.arrayBuffer()))
        records.push(ExportRecordSchema.parse(JSON.parse(line)));
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return records;
}

/** The exported lines once `ready` holds of them (the queue delivers in its own time). */
export function exportedWhen(ready: (lines: ExportRecord[]) => boolean): Promise<ExportRecord[]> {
  return vi.waitFor(
    async () => {
      const lines = await allLines();
      if (!ready(lines)) throw new Error("not exported yet");
      return lines;
    },
    { timeout: 15_000, interval: 100 },
  );
}

export const hasId = (id: string) => (lines: ExportRecord[]) => lines.some((line) => line.id === id);
