import type { Millis, Traits } from "../core/model.ts";
import { parseDuration } from "./duration.ts";
import { dateOf } from "./operators.ts";
import type { Condition, Journey, RulesDocument } from "./schema.ts";

/**
 * The traits journey triggers read (`traits.tier`, `traits.lastOrderAt`, through named conditions
 * and segments): the visitor's object keeps a copy of just these, passed by every trait write, so
 * its trigger checks (after a batch, on its alarm, after the write itself) see the person's imported
 * traits without reading KV (docs/decisions.md). A date comparison on a trait (`olderThan`,
 * `within`) changes its answer with time alone: the object's alarm comes back when it does.
 */

/** A date comparison on a trait: its answer changes `afterMs` after the trait's date. */
export interface TraitDate {
  /** The path under `traits` (`["lastOrderAt"]`). */
  readonly path: readonly string[];
  readonly afterMs: Millis;
}

export interface TriggerTraits {
  /** Top-level trait names any active journey's trigger reads: what the object keeps. */
  readonly names: ReadonlySet<string>;
  /** The date comparisons of segment and condition triggers (an event's `where` waits for its event). */
  readonly dates: readonly TraitDate[];
}

export const NO_TRIGGER_TRAITS: TriggerTraits = { names: new Set(), dates: [] };

/** Walks the triggers (their `where`, segments and conditions, through names) for `traits.*` paths. */
export function triggerTraits(
  doc: RulesDocument,
  triggers: ReadonlyArray<Journey["trigger"]>,
): TriggerTraits {
  const names = new Set<string>();
  const dates: TraitDate[] = [];
  const seen = new Set<string>();
  // Only a segment or condition trigger is checked by the clock; an event's `where` waits for its event.
  let timed = true;
  const walk = (condition: Condition): void => {
    if ("all" in condition) condition.all.forEach(walk);
    else if ("any" in condition) condition.any.forEach(walk);
    else if ("not" in condition) walk(condition.not);
    else if ("ref" in condition) {
      const named = doc.conditions[condition.ref];
      if (named && !seen.has(`${timed}:c:${condition.ref}`)) {
        seen.add(`${timed}:c:${condition.ref}`);
        walk(named);
      }
    } else if ("segment" in condition) {
      const segment = doc.segments[condition.segment];
      if (segment && !seen.has(`${timed}:s:${condition.segment}`)) {
        seen.add(`${timed}:s:${condition.segment}`);
        walk(segment.condition);
      }
    } else if ("path" in condition) {
      const [root, name, ...rest] = condition.path.split(".");
      if (root !== "traits" || !name) return;
      names.add(name);
      if (!timed || (condition.op !== "olderThan" && condition.op !== "within")) return;
      const afterMs = typeof condition.value === "string" ? parseDuration(condition.value) : null;
      if (afterMs) dates.push({ path: [name, ...rest], afterMs });
    }
  };
  for (const trigger of triggers) {
    timed = !("event" in trigger);
    if ("event" in trigger) {
      if (trigger.where) walk(trigger.where);
    } else if ("segment" in trigger) walk({ segment: trigger.segment });
    else walk(trigger.condition);
  }
  return { names, dates };
}

/** The part of `traits` the triggers read (own keys only: traits come from JSON). */
export function pickTraits(traits: Readonly<Traits>, names: ReadonlySet<string>): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const name of names) if (Object.hasOwn(traits, name)) picked[name] = traits[name];
  return picked;
}

/** Whether two picks hold the same values (a write that changed nothing a trigger reads). */
export function sameTraits(a: Readonly<Traits>, b: Readonly<Traits>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && JSON.stringify(a[key]) === JSON.stringify(b[key]));
}

/** The next time after `now` a trait date comparison changes its answer; null when none will. */
export function nextTraitChange(
  dates: readonly TraitDate[],
  traits: Readonly<Traits>,
  now: Millis,
): Millis | null {
  let next: Millis | null = null;
  for (const { path, afterMs } of dates) {
    let value: unknown = traits;
    for (const key of path) {
      value =
        value !== null && typeof value === "object" && Object.hasOwn(value, key)
          ? (value as Record<string, unknown>)[key]
          : undefined;
    }
    const at = dateOf(value);
    if (at === null) continue;
    const turns = at + afterMs;
    if (turns > now && (next === null || turns < next)) next = turns;
  }
  return next;
}
