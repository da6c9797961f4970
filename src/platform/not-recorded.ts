import { log } from "./log.ts";

/**
 * Writes made off the critical path (ctx.waitUntil: page views, cap exposures, assignments,
 * experiment exposures) have no caller left to answer. One that fails must still not vanish: it is
 * logged with its reason and counted here, per kind of write, for as long as the isolate lives.
 */
export type UnrecordedWrite = "page_view" | "decision" | "experiment_exposures" | "page_writes";

const dropped: Record<UnrecordedWrite, number> = {
  page_view: 0,
  decision: 0,
  experiment_exposures: 0,
  page_writes: 0,
};

/**
 * Logs `<what>_not_recorded` with the reason, and counts it.
 *
 * @example await stub.snapshot(…).catch((err: unknown) => notRecorded("page_view", err));
 */
export function notRecorded(what: UnrecordedWrite, err: unknown): void {
  dropped[what]++;
  log("warn", `${what}_not_recorded`, { reason: err instanceof Error ? err.message : String(err) });
}

/** How many writes of each kind this isolate has dropped (a copy: for tests and diagnostics). */
export function unrecordedWrites(): Readonly<Record<UnrecordedWrite, number>> {
  return { ...dropped };
}
