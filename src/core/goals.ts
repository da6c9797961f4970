import type { CompiledGoal } from "./compiled-rules.ts";
import type { Millis, VisitorEvent } from "./model.ts";

/**
 * Which experiment goals a batch of new events reached, for measurement. Whatever route the events
 * came by (the page's beacon, /v1/events, /v1/decide, a backfill), they are applied by the
 * visitor's object, which passes here only the events it had not seen (ids are stored once): each
 * goal event is reported once, and the experiment's shard counts the visitor once per goal.
 */

/** One goal event of a visitor in an experiment they are assigned to. */
export interface GoalEvent {
  readonly experiment: string;
  readonly variant: string;
  readonly goal: string;
  readonly at: Millis;
  /** The event's value at the goal's path (a finite number), else 0. */
  readonly value: number;
  /** How long after the visitor's first exposure the goal counts (Infinity: no window). */
  readonly windowMs: number;
}

/** What it needs of the compiled rules' experiments (a structural subset of CompiledExperiment). */
export interface GoalExperiments {
  readonly experiments: Readonly<
    Record<
      string,
      {
        readonly id: string;
        readonly goals: readonly CompiledGoal[];
        readonly startMs: number;
        readonly endMs: number;
      }
    >
  >;
}

/** A goal's value on an event: the number at its props path; 0 when absent, not a number or not finite. */
export function goalValue(goal: CompiledGoal, event: VisitorEvent): number {
  if (!goal.valuePath) return 0;
  let at: unknown = event.props;
  for (const key of goal.valuePath) {
    if (typeof at !== "object" || at === null || !Object.hasOwn(at, key)) return 0;
    at = (at as Record<string, unknown>)[key];
  }
  const value = typeof at === "string" && at.trim() !== "" ? Number(at) : at;
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

export function goalsReached(
  assignments: Readonly<Record<string, string>>,
  events: readonly VisitorEvent[],
  rules: GoalExperiments,
): GoalEvent[] {
  const reached: GoalEvent[] = [];
  for (const experiment of Object.values(rules.experiments)) {
    const variant = Object.hasOwn(assignments, experiment.id) ? assignments[experiment.id] : undefined;
    if (!variant) continue;
    for (const event of events) {
      // Outside its dates an experiment counts nobody: a conversion after it ended is not its result.
      if (event.ts < experiment.startMs || event.ts >= experiment.endMs) continue;
      for (const goal of experiment.goals)
        if (goal.event === event.type)
          reached.push({
            experiment: experiment.id,
            variant,
            goal: goal.id,
            at: event.ts,
            value: goalValue(goal, event),
            windowMs: goal.windowMs,
          });
    }
  }
  return reached;
}
