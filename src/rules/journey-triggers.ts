import type { Millis, RequestContext, Traits, VisitorEvent, VisitorState } from "../core/model.ts";
import type { EvalScope } from "../core/scope.ts";
import type { CompiledRules } from "./compile.ts";
import type { CompiledJourney } from "./journeys.ts";

/**
 * Which journeys a person enters, decided by their visitor's object as it stores their events (pure:
 * the object passes its latest entry per journey in, `src/state/journey-store.ts` holds them): cheap
 * when no journey cares (a set lookup per event), deterministic instance ids (a replayed trigger names
 * the instance that already runs), and the re-entry rule read from the object's own entries.
 */

/** Triggers read the person's behaviour on no page: a context with nothing in it. */
const JOURNEY_CONTEXT: RequestContext = {
  channel: "journey",
  url: null,
  path: "/",
  query: {},
  referrer: null,
  geo: { country: null, region: null, city: null, timezone: null },
  device: "unknown",
  locale: null,
  userAgent: null,
  custom: {},
};

/**
 * What a journey's conditions read: the person's state at `now`, and the traits given (a trigger
 * check passes the copy the visitor's object keeps of the traits triggers read; a step, the KV profile).
 */
export function journeyScope(
  rules: Pick<CompiledRules, "halfLives" | "eventSides">,
  state: VisitorState,
  now: Millis,
  extra: { traits?: Readonly<Record<string, unknown>>; event?: VisitorEvent } = {},
): EvalScope {
  return {
    now,
    traits: extra.traits ?? {},
    context: JOURNEY_CONTEXT,
    state,
    consent: {},
    assignments: { ...state.assignments },
    halfLives: rules.halfLives,
    eventSides: rules.eventSides,
    ...(extra.event ? { event: extra.event } : {}),
  };
}

/**
 * A Workflows instance id for one entry: the journey's id and a hash of the person and the cause,
 * so the same trigger always names the same instance (create() then fails: already entered). FNV-1a
 * over 52 bits, synchronous: the id is needed inside the object's write, before any await.
 */
export function instanceId(journey: string, visitorId: string, cause: string): string {
  let high = 0x811c9dc5;
  let low = 0x01000193;
  for (const char of `${visitorId}\u0000${cause}`) {
    const code = char.codePointAt(0)!;
    high = Math.imul(high ^ code, 0x01000193) >>> 0;
    low = Math.imul(low ^ (code + 0x9e37), 0x85ebca6b) >>> 0;
  }
  return `${journey}-${high.toString(16).padStart(8, "0")}${low.toString(16).padStart(8, "0")}`;
}

/** A person's latest entry of a journey, as their object holds it; null when they never entered. */
export type LatestEntry = (journey: string) => { readonly status: string; readonly enteredAt: Millis } | null;

/** Whether the person may enter `journey` now: never twice at once, and as its re-entry rule says. */
export function mayEnter(latestEntry: LatestEntry, journey: CompiledJourney, now: Millis): boolean {
  const latest = latestEntry(journey.id);
  if (!latest) return true;
  if (latest.status === "running" || journey.reentryMs === null) return false;
  return now - latest.enteredAt >= journey.reentryMs;
}

export interface Entry {
  readonly journey: string;
  readonly cause: string;
}

/**
 * The journeys a stored batch starts: event triggers by the batch's new events, segment and condition
 * triggers by the state after it (`checkState`: "batch" skips those only time can make true). Every
 * event costs a set lookup; a journey's condition is evaluated only when its trigger's event type is
 * in the batch. `traits`: the person's traits the triggers read (src/rules/journey-traits.ts); a
 * trait write checks with no events and `"schedule"`.
 */
export function entriesFor(
  rules: CompiledRules,
  fresh: readonly VisitorEvent[],
  state: VisitorState,
  latestEntry: LatestEntry,
  now: Millis,
  checkState: "batch" | "schedule",
  traits: Readonly<Traits> = {},
): Entry[] {
  const journeys = rules.journeys;
  const entries: Entry[] = [];
  const entering = new Set<string>();
  if (journeys.triggerEvents.size > 0) {
    for (const event of fresh) {
      if (!journeys.triggerEvents.has(event.type)) continue;
      for (const journey of Object.values(journeys.byId)) {
        const trigger = journey.trigger;
        if (!journey.active || trigger.kind !== "event" || trigger.event !== event.type) continue;
        if (entering.has(journey.id)) continue;
        if (trigger.where && !trigger.where(journeyScope(rules, state, now, { traits, event }))) continue;
        if (!mayEnter(latestEntry, journey, now)) continue;
        entering.add(journey.id);
        entries.push({ journey: journey.id, cause: event.id });
      }
    }
  }
  const candidates =
    checkState === "schedule" ? journeys.stateTriggered : journeys.stateTriggered.filter((j) => !j.timeOnly);
  if (candidates.length > 0) {
    const scope = journeyScope(rules, state, now, { traits });
    for (const journey of candidates) {
      if (entering.has(journey.id) || journey.trigger.kind === "event") continue;
      if (!journey.trigger.test(scope) || !mayEnter(latestEntry, journey, now)) continue;
      entering.add(journey.id);
      entries.push({ journey: journey.id, cause: `state-${now}` });
    }
  }
  return entries;
}
