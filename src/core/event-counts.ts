import type { VisitorEvent, VisitorState } from "./model.ts";
import { HOUR_MS, own } from "./visitor-state.ts";

/**
 * The windowed counts a rules version reads (`countWithin` and `rate` without a `where`), known once
 * per version: each distinct (event type, window) gets a slot when its condition is compiled, so
 * a decision counts each at most once, however many audiences read it, and only when one is read.
 */
export class CountPlan {
  readonly #types: string[] = [];
  readonly #windows: number[] = [];

  /** The slot of "events of `type` in the last `windowMs`"; the same slot for the same pair. */
  slot(type: string, windowMs: number): number {
    for (let s = 0; s < this.#types.length; s++)
      if (this.#types[s] === type && this.#windows[s] === windowMs) return s;
    this.#types.push(type);
    this.#windows.push(windowMs);
    return this.#types.length - 1;
  }

  /** How many slots there are: a decision keeps one count per slot. */
  get size(): number {
    return this.#types.length;
  }

  /** A decision's counts, none worked out yet (-1). */
  fresh(): Int32Array {
    return new Int32Array(this.#types.length).fill(-1);
  }

  /** The slot's count at `now`: events of its type with a time in (now − window, now]. */
  count(slot: number, state: VisitorState | null, now: number): number {
    return countSince(state, this.#types[slot]!, now - this.#windows[slot]!, now);
  }
}

/**
 * Events of `type` with a time in (since, now], those `where` accepts when given: walked back from
 * the newest (the visitor's object keeps the log oldest first) to the window's start, which is
 * cheaper than indexing the log for the few counts a decision reads.
 */
export function countInWindow(
  events: unknown,
  type: string,
  since: number,
  now: number,
  where: ((event: VisitorEvent, now: number) => boolean) | null,
): number {
  if (!Array.isArray(events)) return 0;
  let n = 0;
  for (let i = events.length - 1; i >= 0; i--) {
    // The engine's hottest loop: an entry is read only as far as counting needs (an object with a
    // numeric time and this type; `where` checks the props it reads), so a malformed one is skipped.
    const event: unknown = events[i];
    if (typeof event !== "object" || event === null) continue;
    const ts: unknown = (event as VisitorEvent).ts;
    if (typeof ts !== "number") continue;
    if (ts <= since) break;
    if (
      ts <= now &&
      (event as VisitorEvent).type === type &&
      (where === null || where(event as VisitorEvent, now))
    )
      n++;
  }
  return n;
}

/**
 * Events of `type` in (since, now], unfiltered. When the log has let go of events inside the window
 * (a busy visitor's 500 events can span less than it), it is read after its cut and the hourly
 * counters up to it (docs/decisions.md, record 21).
 */
export function countSince(state: VisitorState | null, type: string, since: number, now: number): number {
  const events = state?.events;
  const through = state?.prunedThrough ?? null;
  if (through === null || through <= since) return countInWindow(events, type, since, now, null);
  return countInWindow(events, type, through, now, null) + countedUpTo(state!, type, since, through);
}

/**
 * The counters' events in (since, through]: the whole hours from `since` on (the window's first,
 * partial hour is left out: counters know hours, not minutes), and of the hour holding `through`
 * only its events up to it (the rest of that hour is in the log, counted there). A bucket of the
 * wrong shape counts nothing: the engine never throws on a state.
 */
function countedUpTo(state: VisitorState, type: string, since: number, through: number): number {
  const buckets: unknown = own(state.counts, type);
  if (!Array.isArray(buckets)) return 0;
  const lastHour = Math.floor(through / HOUR_MS) * HOUR_MS;
  let n = 0;
  for (const bucket of buckets) {
    if (!Array.isArray(bucket) || typeof bucket[0] !== "number" || typeof bucket[1] !== "number") continue;
    if (bucket[0] > lastHour) break;
    if (bucket[0] >= since) n += bucket[1];
  }
  if (lastHour >= since) n -= countInWindow(state.events, type, through, lastHour + HOUR_MS - 1, null);
  return Math.max(0, n);
}

/** A stored event as the engine reads it: a type, a time and props (anything else in a log is skipped). */
export function isStoredEvent(value: unknown): value is VisitorEvent {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    typeof (value as VisitorEvent).type === "string" &&
    typeof (value as VisitorEvent).ts === "number" &&
    typeof (value as VisitorEvent).props === "object" &&
    (value as VisitorEvent).props !== null &&
    !Array.isArray((value as VisitorEvent).props)
  );
}
