import { rebaseIntent } from "./intent.ts";
import type { VisitorEvent } from "./model.ts";
import {
  applyEvent,
  applySequenced,
  DEFAULT_LIMITS,
  emptyState,
  type MutableVisitorState,
  type Scoring,
  type StateLimits,
} from "./visitor-state.ts";

/**
 * Backfill, pure: a visitor's older history (a CRM's or an email platform's, sent in any order)
 * folded into their state so that it reads as if every event had arrived live, in time order.
 *
 * Most of the state does not depend on the order events arrive in: the log (kept sorted), hourly
 * counters, engagement counts and hours, and the latest time per type, per conversion and of the
 * person's activity. Those take the backfilled events as live ones would. Two parts do depend on it:
 * sessions (a visit starts one only after the gap since the previous visit, so a late visit never
 * starts one) and capped intent scores (the cap is applied at each step). Those are rebuilt by
 * replaying the kept log in time order, once without and once with the backfilled events, and
 * swapping the first replay's share of the state for the second's. The part of the state older than
 * the kept log (events the log already let go) stays as it is.
 *
 * Exact when the kept log holds the visitor's whole history (nothing pruned yet) and the rules'
 * scoring has not changed since: the state is then the one the history gives arriving live in time
 * order. When older events were pruned, a backfilled visit within the session gap of the first kept
 * one, or a score at its cap, can differ by that one session or the cap's clipping.
 */

/** Time order, and the id for events of the same millisecond, so every replay is the same. */
const byTime = (a: VisitorEvent, b: VisitorEvent) => a.ts - b.ts || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The sessions and scores a list of events gives alone, applied in time order from nothing. */
function replay(events: readonly VisitorEvent[], scoring: Scoring | null, limits: StateLimits) {
  const state = emptyState("");
  for (const event of events) applySequenced(state, event, scoring, limits);
  return state;
}

/**
 * Folds `arriving` (new events: the caller has dropped ids seen before) into `state`. The caller
 * prunes and saves the state afterwards, as after live events.
 *
 * @example backfillHistory(state, [{ id: "crm-1", type: "email_open", ts: sixtyDaysAgo, channel: "email", props: {} }], scoring)
 */
export function backfillHistory(
  state: MutableVisitorState,
  arriving: readonly VisitorEvent[],
  scoring: Scoring | null,
  limits: StateLimits = DEFAULT_LIMITS,
): void {
  if (arriving.length === 0) return;
  const sorted = [...arriving].sort(byTime);
  const kept = [...state.events].sort(byTime);
  // Nothing older than what is held: exactly what arriving live, in time order, does.
  if (sorted[0]!.ts >= (kept.at(-1)?.ts ?? Number.NEGATIVE_INFINITY)) {
    for (const event of sorted) applyEvent(state, event, scoring, limits);
    return;
  }
  const sessionsBefore = state.sessionCount;
  const intentBefore = { ...state.intent };
  for (const event of sorted) applyEvent(state, event, scoring, limits);
  const without = replay(kept, scoring, limits);
  const withThem = replay([...kept, ...sorted].sort(byTime), scoring, limits);
  // A visit between two sessions can join them into one: the count may fall, never below none.
  state.sessionCount = Math.max(0, sessionsBefore - without.sessionCount + withThem.sessionCount);
  if (!scoring) return;
  const halfLives: Record<string, number> = {};
  const caps: Record<string, number> = {};
  for (const [dimension, setting] of Object.entries(scoring.dimensions)) {
    halfLives[dimension] = setting.halfLifeMs;
    caps[dimension] = setting.cap;
  }
  state.intent = rebaseIntent(intentBefore, without.intent, withThem.intent, halfLives, caps);
}
