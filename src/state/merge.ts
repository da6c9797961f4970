import { mergeIntent } from "../core/intent.ts";
import type { ChannelEngagement, Millis, VisitorEvent, VisitorState } from "../core/model.ts";
import {
  DEFAULT_LIMITS,
  HOUR_MS,
  type MutableVisitorState,
  own,
  type StateLimits,
} from "../core/visitor-state.ts";

/**
 * Identity stitching, pure: folds the state of one visitor (the anonymous one, usually) into
 * another. Aggregates are merged as aggregates (not re-derived from the source's events) because
 * the source's counters reach further back (90 days) than its event log (500 events, 30 days).
 *
 * - events: the source's new events join the log in time order (the caller has already dropped
 *   ids the target had seen; `duplicates` are those, so their counts are not added twice);
 * - counts: summed per hourly bucket (a type one side did not count is rebuilt or dropped at the next
 *   event, by the rules' counted types); the log's cut: the later of the two; lastByType and conversions: the later time wins;
 * - intent: both scores decayed to `now` and added (`mergeIntent`), capped per dimension;
 * - engagement and the hour-of-day histogram: summed;
 * - assignments: the target's (known person's) variants win, the source fills experiments the
 *   target never saw; exposures: the union, in time order;
 * - sessions: summed, less one when the source's last activity falls in the target's current
 *   session (a login in the middle of a visit is one session, not two).
 */
export function mergeVisitorState(
  target: MutableVisitorState,
  source: VisitorState,
  fresh: readonly VisitorEvent[],
  duplicates: readonly VisitorEvent[],
  now: Millis,
  dimensions: Readonly<Record<string, { readonly halfLifeMs: number; readonly cap: number }>>,
  limits: StateLimits = DEFAULT_LIMITS,
): void {
  if (fresh.length) {
    target.events = [...target.events, ...fresh].sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : 1));
  }
  mergeCounts(target, source, duplicates);
  // The merged log holds every event after the later of the two cuts; the counters hold the rest.
  const sourceCut = source.prunedThrough ?? null;
  if (sourceCut !== null && (target.prunedThrough === null || sourceCut > target.prunedThrough))
    target.prunedThrough = sourceCut;
  mergeLatest(target.lastByType, source.lastByType);
  mergeLatest(target.conversions, source.conversions);
  mergeIntentScores(target, source, now, dimensions);
  mergeEngagement(target, source);
  mergeExperiments(target, source, limits);
  mergeSessions(target, source, limits);
}

/** A duplicate event's hourly bucket, keyed by type: the count it already added to the target. */
const bucketKey = (type: string, bucket: Millis) => `${type}\u0000${bucket}`;

/** Hourly counts summed, less the events the target had already counted (the duplicates). */
function mergeCounts(target: MutableVisitorState, source: VisitorState, duplicates: readonly VisitorEvent[]) {
  const alreadyCounted = new Map<string, number>();
  for (const event of duplicates) {
    const key = bucketKey(event.type, Math.floor(event.ts / HOUR_MS) * HOUR_MS);
    alreadyCounted.set(key, (alreadyCounted.get(key) ?? 0) + 1);
  }
  for (const [type, buckets] of Object.entries(source.counts)) {
    const merged = new Map<Millis, number>(own(target.counts, type) ?? []);
    for (const [bucket, count] of buckets) {
      const added = count - (alreadyCounted.get(bucketKey(type, bucket)) ?? 0);
      if (added > 0) merged.set(bucket, (merged.get(bucket) ?? 0) + added);
    }
    if (merged.size) target.counts[type] = [...merged].sort((a, b) => a[0] - b[0]);
  }
}

/** Per key, the later of the two times wins. */
function mergeLatest(target: Record<string, Millis>, source: Readonly<Record<string, Millis>>): void {
  for (const [key, at] of Object.entries(source)) {
    if ((own(target, key) ?? Number.NEGATIVE_INFINITY) < at) target[key] = at;
  }
}

function mergeIntentScores(
  target: MutableVisitorState,
  source: VisitorState,
  now: Millis,
  dimensions: Readonly<Record<string, { readonly halfLifeMs: number; readonly cap: number }>>,
): void {
  const halfLives: Record<string, number> = {};
  const caps: Record<string, number> = {};
  for (const [dimension, setting] of Object.entries(dimensions)) {
    halfLives[dimension] = setting.halfLifeMs;
    caps[dimension] = setting.cap;
  }
  target.intent = mergeIntent(target.intent, source.intent, now, halfLives, caps);
}

/** Sends, opens, clicks and the hour-of-day histograms summed per channel; the later last time wins. */
function mergeEngagement(target: MutableVisitorState, source: VisitorState): void {
  for (const [channel, theirs] of Object.entries(source.engagement)) {
    const ours: ChannelEngagement = own(target.engagement, channel) ?? {
      sends: 0,
      opens: 0,
      clicks: 0,
      lastAt: null,
    };
    target.engagement[channel] = {
      sends: ours.sends + theirs.sends,
      opens: ours.opens + theirs.opens,
      clicks: ours.clicks + theirs.clicks,
      lastAt:
        ours.lastAt === null
          ? theirs.lastAt
          : theirs.lastAt === null
            ? ours.lastAt
            : Math.max(ours.lastAt, theirs.lastAt),
      hours: Array.from({ length: 24 }, (_, hour) => (ours.hours?.[hour] ?? 0) + (theirs.hours?.[hour] ?? 0)),
    };
  }
  target.engagementHours = target.engagementHours.map(
    (count, hour) => count + (source.engagementHours[hour] ?? 0),
  );
}

/** Assignments: the target's variants win; exposures: the union, in time order, bounded. */
function mergeExperiments(target: MutableVisitorState, source: VisitorState, limits: StateLimits): void {
  for (const [experiment, variant] of Object.entries(source.assignments)) {
    if (!Object.hasOwn(target.assignments, experiment)) target.assignments[experiment] = variant;
  }
  for (const [experience, times] of Object.entries(source.exposures)) {
    const all = [...(own(target.exposures, experience) ?? []), ...times].sort((a, b) => a - b);
    target.exposures[experience] = all.slice(-limits.maxExposuresPerExperience);
  }
}

/** Sessions summed, less one when the two visits overlap (a login mid-visit is one session). */
function mergeSessions(target: MutableVisitorState, source: VisitorState, limits: StateLimits): void {
  if (source.lastSeen === null) return;
  const sameSession =
    target.lastSeen !== null && Math.abs(target.lastSeen - source.lastSeen) <= limits.sessionGapMs;
  target.sessionCount += Math.max(0, source.sessionCount - (sameSession ? 1 : 0));
  const sourceFirstSeen = source.firstSeen ?? source.lastSeen;
  if (target.firstSeen === null || sourceFirstSeen < target.firstSeen) target.firstSeen = sourceFirstSeen;
  if (target.lastSeen === null || source.lastSeen > target.lastSeen) target.lastSeen = source.lastSeen;
}
