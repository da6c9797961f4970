import type { ExportKind, ExportRecord } from "../state/export-record.ts";

/**
 * Where the export's lines go in R2 (docs/export.md): one gzip NDJSON file per kind and hour,
 * `type=<kind>/date=YYYY-MM-DD/hour=HH/<name>.ndjson.gz`, the layout Hive-partitioned tables (and
 * so most warehouses' external tables) read. The name is derived from the ids in the file, so a
 * batch retried with the same messages writes the same key: it overwrites itself, never doubles.
 */

/** The partition a record belongs to: its kind and the UTC date and hour of `at`. */
export function partitionOf(record: Pick<ExportRecord, "kind" | "at">): string {
  return partitionFor(record.kind, Date.parse(record.at));
}

export function partitionFor(kind: ExportKind, at: number): string {
  const iso = new Date(at).toISOString();
  return `type=${kind}/date=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}/`;
}

/** The file's key: its partition and the SHA-256 of its sorted ids (the same lines, the same key). */
export async function fileKey(partition: string, ids: readonly string[]): Promise<string> {
  const sorted = [...ids].sort().join("\n");
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(sorted));
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${partition}${hex.slice(0, 32)}.ndjson.gz`;
}

/** The lines, one JSON record each, gzip-compressed (CompressionStream, the runtime's own). */
export async function gzipNdjson(records: readonly ExportRecord[]): Promise<Uint8Array> {
  const text = records.map((record) => `${JSON.stringify(record)}\n`).join("");
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A file's lines back (the tests and the local listing read files this way). */
export async function gunzipLines(body: ReadableStream<Uint8Array> | ArrayBuffer): Promise<string[]> {
  const stream = body instanceof ArrayBuffer ? new Blob([body]).stream() : body;
  const text = await new Response(stream.pipeThrough(new DecompressionStream("gzip"))).text();
  return text.split("\n").filter((line) => line.length > 0);
}
