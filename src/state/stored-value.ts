import type * as z from "zod";
import { log } from "../platform/log.ts";

/**
 * The storage boundary: what comes back out of storage is parsed with the schema that wrote it, and
 * a write that could not be made is logged and counted. Storage outlives deployments, so a value
 * written by an older version (or damaged) must cost only itself: it is logged and read as absent,
 * never thrown, so a visitor is never lost to one bad row.
 */

/**
 * `value` (already decoded) read with `schema`; `undefined` when it does not fit, logged under `kind`
 * (the key's kind, e.g. `meta.consent` or `kv.profile`: never the key itself, which may hold an id).
 */
export function parseStored<T>(schema: z.ZodType<T>, value: unknown, kind: string): T | undefined {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  log("warn", "stored_value_invalid", {
    kind,
    issues: parsed.error.issues.slice(0, 5).map((issue) => `${issue.path.join(".")}: ${issue.message}`),
  });
  return undefined;
}

/** JSON text out of storage read with `schema`; `undefined` when absent, not JSON, or not of its shape. */
export function parseStoredJson<T>(
  schema: z.ZodType<T>,
  text: string | null | undefined,
  kind: string,
): T | undefined {
  if (text === null || text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    log("warn", "stored_value_invalid", { kind, issues: [`not JSON: ${String(err)}`] });
    return undefined;
  }
  return parseStored(schema, value, kind);
}

/** Why a write was not made, counted per reason since the isolate started (read by tests and logs). */
const droppedWrites = new Map<string, number>();

/**
 * A write that was dropped or failed off the response's path (an alarm not armed, page views not
 * flushed): logged with its reason and counted, so it is never silent.
 */
export function recordDroppedWrite(reason: string, error: unknown): void {
  const count = (droppedWrites.get(reason) ?? 0) + 1;
  droppedWrites.set(reason, count);
  log("error", "write_dropped", {
    reason,
    count,
    error: error instanceof Error ? error.message : String(error),
  });
}

/** How many writes were dropped for `reason` in this isolate. */
export function droppedWriteCount(reason: string): number {
  return droppedWrites.get(reason) ?? 0;
}
