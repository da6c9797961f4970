import type { Test } from "../core/scope.ts";
import { compileCondition, type NamedTests } from "./conditions.ts";
import { parseDuration } from "./duration.ts";
import type { MessageChannel } from "./journey-schema.ts";
import { type TriggerTraits, triggerTraits } from "./journey-traits.ts";
import type { Condition, Journey, RulesDocument } from "./schema.ts";

/**
 * Journeys compiled once per rules version: conditions as closures, steps indexed, and the few sets
 * the visitor's object reads on every event batch (which event types can start or reach a journey),
 * so checking triggers costs a set lookup per event when no journey cares.
 */

export type CompiledTrigger =
  | { readonly kind: "event"; readonly event: string; readonly where: Test | null }
  | { readonly kind: "segment"; readonly segment: string; readonly test: Test }
  | { readonly kind: "condition"; readonly test: Test };

export type CompiledStep =
  | { readonly kind: "wait"; readonly id: string; readonly ms: number }
  | { readonly kind: "bestHour"; readonly id: string }
  | {
      readonly kind: "waitForEvent";
      readonly id: string;
      readonly event: string;
      readonly timeoutMs: number;
      readonly onEvent: "continue" | "exit";
      readonly onTimeout: "continue" | "exit";
    }
  | {
      readonly kind: "branch";
      readonly id: string;
      readonly test: Test;
      readonly onTrue: number;
      readonly onFalse: number;
    }
  | {
      readonly kind: "send";
      readonly id: string;
      readonly via: ReadonlyArray<{ readonly channel: MessageChannel; readonly placement: string }>;
      readonly bestHourWithinMs: number;
    }
  | { readonly kind: "setTrait"; readonly id: string; readonly name: string; readonly value: unknown }
  | { readonly kind: "exit"; readonly id: string };

export interface CompiledJourney {
  readonly id: string;
  readonly active: boolean;
  readonly trigger: CompiledTrigger;
  readonly steps: readonly CompiledStep[];
  readonly exitEvents: ReadonlySet<string>;
  readonly exitTest: Test | null;
  /** Null: a person enters once, ever. */
  readonly reentryMs: number | null;
  readonly dryRun: boolean;
  /** Event types a running instance is sent: what it waits for and what ends it. */
  readonly listens: ReadonlySet<string>;
  /**
   * A segment or condition trigger that is false right after any activity (an inactivity or a
   * silence must hold): a batch of events cannot make it true, only time can, so ingest skips it
   * and the object's schedule checks it.
   */
  readonly timeOnly: boolean;
}

export interface CompiledMessaging {
  readonly capMax: number;
  readonly capPerMs: number;
  /** Minutes after midnight in the person's zone; null: no quiet hours. */
  readonly quiet: { readonly from: number; readonly to: number } | null;
  readonly dryRun: boolean;
}

export interface CompiledJourneys {
  readonly byId: Readonly<Record<string, CompiledJourney>>;
  /** Event types that can start a journey (trigger.event of an active journey). */
  readonly triggerEvents: ReadonlySet<string>;
  /** Active journeys started by a segment or condition becoming true: evaluated on a batch or on schedule. */
  readonly stateTriggered: readonly CompiledJourney[];
  /** Event types any journey listens to once running. */
  readonly listens: ReadonlySet<string>;
  readonly messaging: CompiledMessaging;
  /**
   * How soon after a person's last activity a segment or condition trigger may become true (the
   * shortest silence or inactivity they read): when the visitor's object checks them again.
   */
  readonly stateCheckMs: number;
  /** The traits active journeys' triggers read, and their date comparisons (src/rules/journey-traits.ts). */
  readonly traits: TriggerTraits;
}

const DAY_MS = 86400e3;

/** The shortest silence or inactivity the triggers read (through named conditions and segments); a day when none. */
function shortestWait(doc: RulesDocument, triggers: ReadonlyArray<Journey["trigger"]>): number {
  let shortest = Number.POSITIVE_INFINITY;
  const seen = new Set<string>();
  const walk = (condition: Condition): void => {
    if ("all" in condition) condition.all.forEach(walk);
    else if ("any" in condition) condition.any.forEach(walk);
    else if ("not" in condition) walk(condition.not);
    else if ("ref" in condition) {
      if (!seen.has(`c:${condition.ref}`) && doc.conditions[condition.ref]) {
        seen.add(`c:${condition.ref}`);
        walk(doc.conditions[condition.ref]!);
      }
    } else if ("segment" in condition) visitSegment(condition.segment);
    else if ("inactive" in condition)
      shortest = Math.min(shortest, parseDuration(condition.inactive.for) ?? DAY_MS);
    else if ("silence" in condition)
      shortest = Math.min(shortest, parseDuration(condition.silence.for) ?? DAY_MS);
  };
  const visitSegment = (id: string): void => {
    if (seen.has(`s:${id}`) || !doc.segments[id]) return;
    seen.add(`s:${id}`);
    walk(doc.segments[id]!.condition);
  };
  for (const trigger of triggers) {
    if ("segment" in trigger) visitSegment(trigger.segment);
    else if ("condition" in trigger) walk(trigger.condition);
  }
  return Number.isFinite(shortest) && shortest > 0 ? shortest : DAY_MS;
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

export function compileJourneys(doc: RulesDocument, named: NamedTests): CompiledJourneys {
  const byId: Record<string, CompiledJourney> = {};
  const triggerEvents = new Set<string>();
  const listens = new Set<string>();
  const stateTriggered: CompiledJourney[] = [];
  for (const [id, journey] of Object.entries(doc.journeys)) {
    const compiled = compileJourney(id, journey, named, falseOnActivity(doc));
    byId[id] = compiled;
    for (const type of compiled.listens) listens.add(type);
    if (!compiled.active) continue;
    if (compiled.trigger.kind === "event") triggerEvents.add(compiled.trigger.event);
    else stateTriggered.push(compiled);
  }
  const { cap, quietHours, dryRun } = doc.settings.messaging;
  const roots = stateTriggered.map((journey) => doc.journeys[journey.id]!.trigger);
  const active = Object.values(byId).filter((journey) => journey.active);
  return {
    stateCheckMs: shortestWait(doc, roots),
    traits: triggerTraits(
      doc,
      active.map((journey) => doc.journeys[journey.id]!.trigger),
    ),
    byId,
    triggerEvents,
    stateTriggered,
    listens,
    messaging: {
      capMax: cap.max,
      capPerMs: parseDuration(cap.per) ?? 86400e3,
      quiet: quietHours ? { from: minutesOf(quietHours.from), to: minutesOf(quietHours.to) } : null,
      dryRun,
    },
  };
}

/**
 * Whether a condition is false at the moment of any activity: an inactivity or silence (both need
 * time without events), all() with such a member, any() whose members all are, a named condition or
 * segment that is. `not` and everything else: it may be true.
 */
function falseOnActivity(doc: RulesDocument): (condition: Condition) => boolean {
  const visiting = new Set<string>();
  const check = (condition: Condition): boolean => {
    if ("inactive" in condition || "silence" in condition) return true;
    if ("all" in condition) return condition.all.some(check);
    if ("any" in condition) return condition.any.every(check);
    const name =
      "ref" in condition ? `c:${condition.ref}` : "segment" in condition ? `s:${condition.segment}` : null;
    if (name === null || visiting.has(name)) return false;
    const target =
      "ref" in condition
        ? doc.conditions[condition.ref]
        : "segment" in condition
          ? doc.segments[condition.segment]?.condition
          : undefined;
    if (!target) return false;
    visiting.add(name);
    const result = check(target);
    visiting.delete(name);
    return result;
  };
  return check;
}

function compileJourney(
  id: string,
  journey: Journey,
  named: NamedTests,
  quietAfterActivity: (condition: Condition) => boolean,
): CompiledJourney {
  const at = `journeys.${id}`;
  const indexOf = new Map(journey.steps.map((step, i) => [step.id, i]));
  const listens = new Set<string>(journey.exitOn.events);
  const steps = journey.steps.map((step, i): CompiledStep => {
    if ("wait" in step) return { kind: "wait", id: step.id, ms: parseDuration(step.wait) ?? 0 };
    if ("waitUntil" in step) return { kind: "bestHour", id: step.id };
    if ("waitForEvent" in step) {
      listens.add(step.waitForEvent.event);
      return {
        kind: "waitForEvent",
        id: step.id,
        event: step.waitForEvent.event,
        timeoutMs: parseDuration(step.waitForEvent.timeout) ?? 0,
        onEvent: step.waitForEvent.onEvent,
        onTimeout: step.waitForEvent.onTimeout,
      };
    }
    if ("branch" in step)
      return {
        kind: "branch",
        id: step.id,
        test: compileCondition(step.branch.if, `${at}.steps[${i}].branch.if`, named),
        // Validation makes both targets later steps; a missing one goes on to the next step.
        onTrue: indexOf.get(step.branch.goTo) ?? i + 1,
        onFalse: step.branch.otherwise === undefined ? i + 1 : (indexOf.get(step.branch.otherwise) ?? i + 1),
      };
    if ("send" in step)
      return {
        kind: "send",
        id: step.id,
        via: step.send.via,
        bestHourWithinMs: parseDuration(step.send.bestHourWithin) ?? 0,
      };
    if ("setTrait" in step)
      return { kind: "setTrait", id: step.id, name: step.setTrait.name, value: step.setTrait.value };
    return { kind: "exit", id: step.id };
  });
  const trigger = journey.trigger;
  return {
    id,
    active: journey.status === "active",
    trigger:
      "event" in trigger
        ? {
            kind: "event",
            event: trigger.event,
            where: trigger.where ? compileCondition(trigger.where, `${at}.trigger.where`, named) : null,
          }
        : "segment" in trigger
          ? { kind: "segment", segment: trigger.segment, test: named.segment(trigger.segment) }
          : {
              kind: "condition",
              test: compileCondition(trigger.condition, `${at}.trigger.condition`, named),
            },
    steps,
    exitEvents: new Set(journey.exitOn.events),
    exitTest: journey.exitOn.condition
      ? compileCondition(journey.exitOn.condition, `${at}.exitOn.condition`, named)
      : null,
    reentryMs: journey.reentry === "never" ? null : (parseDuration(journey.reentry.after) ?? null),
    dryRun: journey.dryRun,
    listens,
    timeOnly:
      "segment" in trigger
        ? quietAfterActivity({ segment: trigger.segment })
        : "condition" in trigger && quietAfterActivity(trigger.condition),
  };
}
