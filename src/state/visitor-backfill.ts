import { backfillHistory } from "../core/backfill.ts";
import type { Millis, VisitorEvent } from "../core/model.ts";
import { log } from "../platform/log.ts";
import type { CompiledRules } from "../rules/index.ts";
import type { BatchHost } from "./visitor-ingest.ts";
import type { BackfillLine } from "./visitor-object.ts";
import { DAY_MS, loggedIds, pruneAndSave, storeEvent } from "./visitor-store.ts";

/**
 * Backfill on the visitor's object: older history stored and folded into the state in one
 * transaction (src/core/backfill.ts does the arithmetic). Idempotent by event id, like live events:
 * an id seen before, live or in an earlier backfill, is a duplicate and changes nothing.
 *
 * Its maximum age is the history the log keeps (EVENT_LOG_MAX_AGE_DAYS): an older event would be
 * pruned at once, so it is refused with that reason rather than taken and silently lost.
 */

/** Why an event older than the kept history is refused (the route says the same before asking). */
export function tooOldReason(maxEventAgeMs: Millis): string {
  return `older than the ${Math.round(maxEventAgeMs / DAY_MS)} days of history kept (EVENT_LOG_MAX_AGE_DAYS)`;
}

/** Each event's fate, in the order sent; the batch commits whole, or nothing of it does. */
export function applyBackfill(
  host: BatchHost,
  events: readonly VisitorEvent[],
  scoring: CompiledRules | null,
  now: Millis,
): BackfillLine[] {
  const floor = now - host.limits.maxEventAgeMs;
  const lines: BackfillLine[] = events.map((event) =>
    event.ts < floor
      ? { status: "refused", reason: tooOldReason(host.limits.maxEventAgeMs) }
      : { status: "accepted" },
  );
  try {
    host.transaction(() => {
      const fresh: VisitorEvent[] = [];
      const logged = loggedIds(host.state());
      for (const [index, event] of events.entries()) {
        if (lines[index]!.status === "refused") continue;
        if (storeEvent(host.sql, event, logged)) fresh.push(event);
        else lines[index] = { status: "duplicate" };
      }
      if (fresh.length === 0) return;
      const state = host.state();
      backfillHistory(state, fresh, scoring, host.limits);
      pruneAndSave(host.sql, state, now, host.limits);
      // In the same transaction: a backfilled event is stored and queued for export, or neither.
      host.keepForExport(fresh);
    });
  } catch (err) {
    // Storage rolled back (the `seen` rows too, so a retry is not a duplicate); memory may hold half
    // of it: read it back. A defect, not bad input: every event the batch would have taken says so.
    host.reload();
    const reason = `not applied: ${err instanceof Error ? err.message : String(err)}; retry`;
    log("error", "backfill_not_applied", { events: events.length, error: reason });
    return lines.map((line) => (line.status === "refused" ? line : { status: "refused", reason }));
  }
  return lines;
}
