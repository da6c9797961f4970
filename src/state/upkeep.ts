import type { Millis } from "../core/model.ts";
import type { StateLimits } from "../core/visitor-state.ts";
import { DAY_MS, type HeldVisitor } from "./visitor-store.ts";

/**
 * When a visitor's object next has upkeep to do (docs/decisions.md, record 25). The upkeep lets go
 * of what has reached its bound: events past the log's age, hourly counters past their retention,
 * remembered event ids past theirs, and the whole visitor once idle for `idleMs` (400 days for a
 * known person, ANONYMOUS_IDLE_DAYS for an anonymous visitor). Nothing else
 * expires, so until the first of these there is nothing to wake for: an object that woke every day
 * would cost one Durable Object request and one alarm write a day for each of the millions of
 * visitors who came once, for the 400 days their cookie lives.
 */

/**
 * The latest thing the visitor did or that was held for them: any event (brand sends included: a
 * newsletter reader's history is sends only), a consent answer, a trait write. Idle is counted from it.
 */
export function lastHeldAt(held: HeldVisitor): Millis {
  let latest = Math.max(held.state.lastSeen ?? 0, held.consentAt, held.traits.at);
  for (const at of Object.values(held.state.lastByType)) if (at > latest) latest = at;
  return latest;
}

/** The bounds the upkeep holds a visitor's object to: the log's, the remembered ids', the idle visitor's. */
export type UpkeepBounds = StateLimits & { readonly idleMs: Millis; readonly seenRetentionMs: Millis };

/**
 * The first time upkeep would change something, on the real clock, and never sooner than a day from
 * `now` (upkeep runs at most daily, as it did when it ran every day: a bound is reached within a day).
 * `oldestSeenAt` is the earliest remembered event id's time (null: none, or not read: the ids are
 * written with their events, whose own expiry comes first).
 */
export function nextUpkeepAt(
  held: HeldVisitor,
  limits: UpkeepBounds,
  oldestSeenAt: Millis | null,
  now: Millis,
): Millis {
  // Each bound is "older than": a thing at `t` goes once now − bound > t, so at t + bound + 1.
  let due = lastHeldAt(held) + limits.idleMs + 1;
  const oldestEvent = held.state.events[0]?.ts;
  if (oldestEvent !== undefined) due = Math.min(due, oldestEvent + limits.maxEventAgeMs + 1);
  for (const buckets of Object.values(held.state.counts)) {
    const first = buckets[0]?.[0];
    if (first !== undefined) due = Math.min(due, first + limits.countRetentionMs + 1);
  }
  if (oldestSeenAt !== null) due = Math.min(due, oldestSeenAt + limits.seenRetentionMs + 1);
  return Math.max(due, now + DAY_MS);
}
