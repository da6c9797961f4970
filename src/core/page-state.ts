import type { Millis, VisitorState } from "./model.ts";
import { firstAfter } from "./visitor-state.ts";

/**
 * What deciding a page's placements reads of a visitor's state beyond what every decision reads
 * (the session count, first and last seen, the intent, the latest time per type, the conversions,
 * the assignments: a few numbers each). Worked out from the rules once per path and rules version
 * (src/rules/compile.ts, `PageSlots.reads`), so a page's one object call carries only the parts of
 * the state its decision can look at (docs/decisions.md, record 29).
 */
export interface PageReads {
  /**
   * The longest window of a windowed count (`countWithin`, `rate`) the placements read: the hourly
   * counters are read no further back, whatever the log's horizon (0: no such count).
   */
  readonly countsWithinMs: number;
  /** The experiences whose exposures a frequency cap counts (capped experiences of the page's placements). */
  readonly exposures: readonly string[];
  /** Some audience of the page's placements reads channel engagement (`preferredChannel`). */
  readonly engagement: boolean;
}

/** Reads nothing beyond what every decision reads. */
export const READS_NOTHING_MORE: PageReads = { countsWithinMs: 0, exposures: [], engagement: false };

const NO_COUNTS: VisitorState["counts"] = {};
const NO_TIMES: VisitorState["exposures"] = {};
const NO_ENGAGEMENT: VisitorState["engagement"] = {};
const NO_HOURS: VisitorState["engagementHours"] = [];

/**
 * The part of `state` a web page's decision at `now` reads when it reads the log no further back
 * than `since` and what `reads` names; `decide()` answers the same from it as from the whole state:
 * - the log: events after `since` (record 26);
 * - the hourly counters: read only for the part of a window the log has let go (`prunedThrough`,
 *   record 21), from a bucket starting at or after the window's start (event-counts.ts
 *   `countedUpTo`): none when the log reaches back past the longest window's start, else the
 *   buckets from that start on;
 * - exposures: only the capped experiences' (decide's caps are their only reader);
 * - channel engagement: only when a condition reads it; the engagement hours never (outbound
 *   channels' timing reads them, and a page is the web channel).
 * The rest is sent as it is.
 */
export function pageState(state: VisitorState, now: Millis, since: Millis, reads: PageReads): VisitorState {
  const events = state.events;
  const through = state.prunedThrough ?? null;
  const countsSince = now - reads.countsWithinMs;
  return {
    visitorId: state.visitorId,
    firstSeen: state.firstSeen,
    lastSeen: state.lastSeen,
    sessionCount: state.sessionCount,
    events:
      since <= (events[0]?.ts ?? Number.POSITIVE_INFINITY) ? events : events.slice(firstAfter(events, since)),
    counts: through === null || through <= countsSince ? NO_COUNTS : countsFrom(state.counts, countsSince),
    prunedThrough: through,
    lastByType: state.lastByType,
    intent: state.intent,
    engagement: reads.engagement ? state.engagement : NO_ENGAGEMENT,
    engagementHours: NO_HOURS,
    exposures: reads.exposures.length === 0 ? NO_TIMES : exposuresOf(state.exposures, reads.exposures),
    assignments: state.assignments,
    conversions: state.conversions,
  };
}

/** Each type's buckets starting at or after `since` (buckets are kept oldest first). */
function countsFrom(counts: VisitorState["counts"], since: Millis): VisitorState["counts"] {
  const kept: Record<string, ReadonlyArray<readonly [Millis, number]>> = {};
  for (const type in counts) {
    if (!Object.hasOwn(counts, type)) continue;
    const buckets = counts[type]!;
    let first = buckets.length;
    while (first > 0 && buckets[first - 1]![0] >= since) first--;
    if (first < buckets.length) kept[type] = first === 0 ? buckets : buckets.slice(first);
  }
  return kept;
}

function exposuresOf(
  exposures: VisitorState["exposures"],
  ids: readonly string[],
): VisitorState["exposures"] {
  const kept: Record<string, readonly Millis[]> = {};
  for (const id of ids) if (Object.hasOwn(exposures, id)) kept[id] = exposures[id]!;
  return kept;
}
