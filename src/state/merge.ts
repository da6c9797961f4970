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
 * - counts: summed per hourly bucket; lastByType and conversions: the later time wins;
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

  const skip = new Map<string, number>();
  for (const e of duplicates) {
    const key = `${e.type}\u0000${Math.floor(e.ts / HOUR_MS) * HOUR_MS}`;
    skip.set(key, (skip.get(key) ?? 0) + 1);
  }
  for (const [type, buckets] of Object.entries(source.counts)) {
    const into = new Map<Millis, number>(own(target.counts, type) ?? []);
    for (const [bucket, n] of buckets) {
      const counted = n - (skip.get(`${type}\u0000${bucket}`) ?? 0);
      if (counted > 0) into.set(bucket, (into.get(bucket) ?? 0) + counted);
    }
    if (into.size) target.counts[type] = [...into].sort((a, b) => a[0] - b[0]);
  }
  for (const [type, at] of Object.entries(source.lastByType)) {
    if ((own(target.lastByType, type) ?? Number.NEGATIVE_INFINITY) < at) target.lastByType[type] = at;
  }
  for (const [goal, at] of Object.entries(source.conversions)) {
    if ((own(target.conversions, goal) ?? Number.NEGATIVE_INFINITY) < at) target.conversions[goal] = at;
  }

  const halfLives: Record<string, number> = {};
  const caps: Record<string, number> = {};
  for (const [dimension, d] of Object.entries(dimensions)) {
    halfLives[dimension] = d.halfLifeMs;
    caps[dimension] = d.cap;
  }
  target.intent = mergeIntent(target.intent, source.intent, now, halfLives, caps);

  for (const [channel, e] of Object.entries(source.engagement)) {
    const t: ChannelEngagement = own(target.engagement, channel) ?? {
      sends: 0,
      opens: 0,
      clicks: 0,
      lastAt: null,
    };
    target.engagement[channel] = {
      sends: t.sends + e.sends,
      opens: t.opens + e.opens,
      clicks: t.clicks + e.clicks,
      lastAt: t.lastAt === null ? e.lastAt : e.lastAt === null ? t.lastAt : Math.max(t.lastAt, e.lastAt),
      hours: Array.from({ length: 24 }, (_, h) => (t.hours?.[h] ?? 0) + (e.hours?.[h] ?? 0)),
    };
  }
  target.engagementHours = target.engagementHours.map((n, h) => n + (source.engagementHours[h] ?? 0));

  for (const [experiment, variant] of Object.entries(source.assignments)) {
    if (!Object.hasOwn(target.assignments, experiment)) target.assignments[experiment] = variant;
  }
  for (const [experience, times] of Object.entries(source.exposures)) {
    const all = [...(own(target.exposures, experience) ?? []), ...times].sort((a, b) => a - b);
    target.exposures[experience] = all.slice(-limits.maxExposuresPerExperience);
  }

  if (source.lastSeen !== null) {
    const sameSession =
      target.lastSeen !== null && Math.abs(target.lastSeen - source.lastSeen) <= limits.sessionGapMs;
    target.sessionCount += Math.max(0, source.sessionCount - (sameSession ? 1 : 0));
    if (target.firstSeen === null || (source.firstSeen ?? source.lastSeen) < target.firstSeen)
      target.firstSeen = source.firstSeen ?? source.lastSeen;
    if (target.lastSeen === null || source.lastSeen > target.lastSeen) target.lastSeen = source.lastSeen;
  }
}
