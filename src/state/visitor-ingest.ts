import type { Millis, VisitorEvent } from "../core/model.ts";
import { applyEvent, type MutableVisitorState, type StateLimits } from "../core/visitor-state.ts";
import { log } from "../platform/log.ts";
import type { CompiledRules } from "../rules/index.ts";
import { addDeadLetter, loggedIds, pruneAndSave, storeEvent } from "./visitor-store.ts";

/**
 * Ingest on the visitor's object: the per-visitor rate limit, and a batch of events applied in one
 * transaction (idempotent by event id), falling back to one transaction per event so that an event
 * that cannot be applied costs only itself and is kept as a dead letter.
 */

/** A token bucket per visitor: a flooding client is slowed down without starving other visitors. */
export const RATE_PER_SECOND = 20;
export const BURST = 200;

export interface TokenBucket {
  tokens: number;
  refilledAt: Millis;
}

export function fullBucket(): TokenBucket {
  return { tokens: BURST, refilledAt: 0 };
}

/** Takes `count` tokens; 0 when taken, else the seconds to wait before the batch would fit. */
export function takeTokens(bucket: TokenBucket, count: number, now: Millis): number {
  const elapsedSeconds = Math.max(0, now - bucket.refilledAt) / 1000;
  bucket.tokens = Math.min(BURST, bucket.tokens + elapsedSeconds * RATE_PER_SECOND);
  bucket.refilledAt = Math.max(bucket.refilledAt, now);
  if (bucket.tokens >= count) {
    bucket.tokens -= count;
    return 0;
  }
  return Math.max(1, Math.ceil((count - bucket.tokens) / RATE_PER_SECOND));
}

/** What a batch needs of the object: its storage, its bounds, and its state (replaced by `reload`). */
export interface BatchHost {
  /** Runs `run` in one storage transaction (the object's, which knows what a rollback undoes). */
  transaction<T>(run: () => T): T;
  readonly sql: SqlStorage;
  readonly limits: StateLimits;
  state(): MutableVisitorState;
  /** Reads memory back from storage, after a rolled-back transaction left it half-applied. */
  reload(): void;
  /**
   * Called inside the transaction that stores `events`: their export lines go into the outbox with
   * them, so a stored (acknowledged) event is always queued for export (export-outbox.ts).
   */
  keepForExport(events: readonly VisitorEvent[]): void;
}

export interface BatchOutcome {
  accepted: number;
  duplicates: number;
  failed: Array<{ id: string; reason: string }>;
  /** The events this batch stored (committed); their export lines were written with them. */
  stored: VisitorEvent[];
}

/**
 * Stores and applies new events; an id seen before is counted as a duplicate, never applied twice.
 * An event's `seen` row, its log row and its effect on the aggregates commit together.
 */
export function applyBatch(
  host: BatchHost,
  events: readonly VisitorEvent[],
  scoring: CompiledRules | null,
  now: Millis,
): BatchOutcome {
  try {
    return applyInOneTransaction(host, events, scoring, now);
  } catch {
    // Storage rolled back; memory may hold half an event: read it back from storage, then go event
    // by event, so one event that cannot be applied costs only itself.
    host.reload();
    return applyEventByEvent(host, events, scoring, now);
  }
}

/** The fast path: the whole batch in one transaction. */
function applyInOneTransaction(
  host: BatchHost,
  events: readonly VisitorEvent[],
  scoring: CompiledRules | null,
  now: Millis,
): BatchOutcome {
  const outcome: BatchOutcome = { accepted: 0, duplicates: 0, failed: [], stored: [] };
  host.transaction(() => {
    const state = host.state();
    const logged = loggedIds(state);
    for (const event of events) {
      if (!storeEvent(host.sql, event, logged)) {
        outcome.duplicates++;
        continue;
      }
      applyEvent(state, event, scoring, host.limits);
      outcome.accepted++;
      outcome.stored.push(event);
    }
    if (outcome.accepted > 0) pruneAndSave(host.sql, state, now, host.limits);
    host.keepForExport(outcome.stored);
  });
  return outcome;
}

/**
 * One transaction per event. An event that cannot be applied is kept as a dead letter with its
 * `seen` row rolled back: never a "duplicate", a retry tries it again.
 */
function applyEventByEvent(
  host: BatchHost,
  events: readonly VisitorEvent[],
  scoring: CompiledRules | null,
  now: Millis,
): BatchOutcome {
  const outcome: BatchOutcome = { accepted: 0, duplicates: 0, failed: [], stored: [] };
  for (const event of events) {
    try {
      host.transaction(() => {
        const state = host.state();
        if (!storeEvent(host.sql, event, loggedIds(state))) {
          outcome.duplicates++;
          return;
        }
        applyEvent(state, event, scoring, host.limits);
        pruneAndSave(host.sql, state, now, host.limits);
        host.keepForExport([event]);
        outcome.accepted++;
      });
      // Counted only once its transaction committed (a throw above skips this).
      if (outcome.accepted > outcome.stored.length) outcome.stored.push(event);
    } catch (err) {
      host.reload();
      const reason = `not applied: ${err instanceof Error ? err.message : String(err)}`;
      outcome.failed.push({ id: event.id, reason });
      addDeadLetter(host.sql, { at: now, reason, raw: JSON.stringify(event) });
      log("error", "event_not_applied", { type: event.type, error: reason });
    }
  }
  return outcome;
}
