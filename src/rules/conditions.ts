import { preferredChannel } from "../core/channels.ts";
import type { CountPlan, PropEquality } from "../core/event-counts.ts";
import type { VisitorEvent } from "../core/model.ts";
import {
  countEvents,
  type EvalScope,
  intentOf,
  lastActivityOf,
  localClockOf,
  pathReader,
  plannedCount,
  readPath,
  type Test,
  topOf,
  topTagOf,
} from "../core/scope.ts";
import { own } from "../core/visitor-state.ts";
import { parseDuration } from "./duration.ts";
import { type Comparison, comparator, dateOf } from "./operators.ts";
import type { Condition } from "./schema.ts";

/**
 * The condition language, compiled once per rules version into closures. Evaluation never throws:
 * a missing path or a value of the wrong type makes a condition false, and the trace (built only
 * when an explanation is asked for) says which condition failed.
 */

/** Named conditions and segments, compiled on demand (validation has ruled out cycles). */
export interface NamedTests {
  readonly condition: (id: string) => Test;
  readonly segment: (id: string) => Test;
  /**
   * The rules version's plan of windowed counts: a count without `where`, or whose `where` is an
   * equality on one event prop, takes a slot in it, so a decision walks the log once per type (and
   * per filtered prop) for all of them. Without one, each count reads the log itself.
   */
  readonly counts?: CountPlan;
}

/** One kind of condition, narrowed from the union by a key only that kind has. */
type ConditionWith<K extends string> = Extract<Condition, Record<K, unknown>>;

/** `at` is the condition's JSON path in the document, which explanations name. */
export function compileCondition(condition: Condition, at: string, named: NamedTests): Test {
  if ("all" in condition)
    return allOf(condition.all.map((part, i) => compileCondition(part, `${at}.all[${i}]`, named)));
  if ("any" in condition)
    return anyOf(
      condition.any.map((part, i) => compileCondition(part, `${at}.any[${i}]`, named)),
      at,
    );
  if ("not" in condition) return negation(compileCondition(condition.not, `${at}.not`, named), at);
  if ("ref" in condition) return namedCondition(condition.ref, named);
  if ("segment" in condition) return segmentMembership(condition.segment, at, named);
  if ("countWithin" in condition) return eventCount(condition, at, named.counts);
  if ("rate" in condition) return eventRate(condition, at, named.counts);
  if ("op" in condition) return pathComparison(condition, at);
  if ("silence" in condition) return silence(condition, at);
  if ("inactive" in condition) return inactivity(condition, at);
  if ("intent" in condition) return intentLevel(condition, at);
  if ("affinity" in condition) return contentAffinity(condition, at);
  if ("preferredChannel" in condition) return channelPreference(condition, at);
  if ("consent" in condition) return consentGiven(condition, at);
  if ("experiment" in condition) return experimentArm(condition, at);
  if ("timeOfDay" in condition) return timeOfDay(condition, at);
  return dayOfWeek(condition, at);
}

/** A leaf condition: its result, reported to the trace with the words that say what it tested. */
function traced(at: string, test: (scope: EvalScope) => boolean, why: string): Test {
  return (scope, trace) => {
    const result = test(scope);
    if (trace) trace(at, result, why);
    return result;
  };
}

// Two parts (the usual) joined directly: a condition is a call per level, and these run per candidate.
function allOf(parts: readonly Test[]): Test {
  if (parts.length === 2) {
    const [first, second] = parts as [Test, Test];
    return (scope, trace) => first(scope, trace) && second(scope, trace);
  }
  return (scope, trace) => {
    for (const part of parts) if (!part(scope, trace)) return false;
    return true;
  };
}

function anyOf(parts: readonly Test[], at: string): Test {
  if (parts.length === 2) {
    const [first, second] = parts as [Test, Test];
    return (scope, trace) => {
      if (first(scope, trace) || second(scope, trace)) return true;
      if (trace) trace(at, false, "no alternative matched");
      return false;
    };
  }
  return (scope, trace) => {
    for (const part of parts) if (part(scope, trace)) return true;
    if (trace) trace(at, false, "no alternative matched");
    return false;
  };
}

function negation(inner: Test, at: string): Test {
  return (scope, trace) => {
    const result = !inner(scope);
    if (trace) trace(at, result, result ? "negated condition is false" : "negated condition is true");
    return result;
  };
}

/** Compiled at its first evaluation (validation has ruled out cycles), then called directly. */
function namedCondition(id: string, named: NamedTests): Test {
  let test: Test | null = null;
  return (scope, trace) => {
    test ??= named.condition(id);
    return test(scope, trace);
  };
}

function segmentMembership(id: string, at: string, named: NamedTests): Test {
  let membership: Test | null = null;
  const plain = `segment ${id}`;
  // The words for a failure inside the segment: the same words for every reader that fails on the
  // same condition, so made again only when the failing condition or its words change.
  const failure = lastWords((path, why) => `segment ${id} — ${path}: ${why}`);
  return (scope, trace) => {
    membership ??= named.segment(id);
    if (!trace) return membership(scope);
    // With a trace, the explanation names the segment and the condition inside it that failed. A
    // segment this decision has already evaluated (compile.ts memoizedSegment) is read from what its
    // conditions told: the same answer as hearing them told again, without a closure per reader.
    const known = scope.segmentCache?.get(id);
    const told = known === undefined ? undefined : scope.segmentTraces?.get(id);
    let result: boolean;
    let heard: ReadonlyArray<readonly [string, boolean, string]>;
    if (known !== undefined && told !== undefined) {
      result = known;
      heard = told;
    } else {
      const evaluated = hear(membership, scope);
      result = evaluated.result;
      heard = evaluated.told;
    }
    let words = plain;
    if (!result)
      for (let i = 0; i < heard.length; i++) {
        const said = heard[i]!;
        if (!said[1]) {
          words = failure.text(said[0], said[2]);
          break;
        }
      }
    trace(at, result, words);
    return result;
  };
}

/** A segment evaluated with a trace: what its conditions told, in order, and its result. */
function hear(
  membership: Test,
  scope: EvalScope,
): { told: ReadonlyArray<readonly [string, boolean, string]>; result: boolean } {
  const told: Array<readonly [string, boolean, string]> = [];
  const result = membership(scope, (path, ok, why) => {
    told.push([path, ok, why]);
  });
  return { told, result };
}

/**
 * Words made from a condition's path and why, kept for the last pair: a trace tells the same
 * condition's static words over and over, and each new text would be new garbage in an explained
 * decision (and compared again by content when shared).
 */
function lastWords(make: (path: string, why: string) => string): {
  text(path: string, why: string): string;
} {
  let lastPath: string | null = null;
  let lastWhy = "";
  let last = "";
  return {
    text(path, why) {
      if (path !== lastPath || why !== lastWhy) {
        lastPath = path;
        lastWhy = why;
        last = make(path, why);
      }
      return last;
    },
  };
}

/**
 * Events of one type in (now − window, now]: read from the plan's counts (one walk of the log per
 * type and decision for all its windows), or, filtered by a `where` the plan cannot group by,
 * counted in the log.
 */
function windowedCount(
  plan: CountPlan | undefined,
  type: string,
  windowMs: number,
  where: ConditionWith<"countWithin">["countWithin"]["where"] | null,
): (scope: EvalScope) => number {
  const slot = plan ? plannedSlot(plan, type, windowMs, where) : null;
  if (plan && slot !== null) return (scope) => plannedCount(scope, plan, slot);
  const filter = where ? eventFilter(where) : null;
  return (scope) => countEvents(scope, type, scope.now - windowMs, filter);
}

/** The plan's slot for this count, or null when its `where` is one the plan cannot group by. */
function plannedSlot(
  plan: CountPlan,
  type: string,
  windowMs: number,
  where: ConditionWith<"countWithin">["countWithin"]["where"] | null,
): number | null {
  const equality = where ? propEquality(where) : null;
  return !where || equality ? plan.slot(type, windowMs, equality) : null;
}

/**
 * A `where` the plan counts by (event.props.<key> eq a string, number or boolean): what eventFilter
 * would test, so the planned count is the filtered walk's. Null for any other filter.
 */
function propEquality(
  where: NonNullable<ConditionWith<"countWithin">["countWithin"]["where"]>,
): PropEquality | null {
  const segments = where.path.split(".");
  const value: unknown = where.value;
  if (where.op !== "eq" || segments.length !== 3 || segments[0] !== "event" || segments[1] !== "props")
    return null;
  if (
    typeof value === "string" ||
    typeof value === "boolean" ||
    (typeof value === "number" && !Number.isNaN(value))
  )
    return { key: segments[2]!, value };
  return null;
}

function eventCount(condition: ConditionWith<"countWithin">, at: string, plan: CountPlan | undefined): Test {
  const { event, window, where } = condition.countWithin;
  const windowMs = parseDuration(window) ?? 0;
  // The schema allows only count operators with a whole number here, which always compile.
  const wanted = comparator(condition.op, condition.value) as Comparison;
  const why = `count of ${event} in ${window} ${condition.op} ${condition.value}`;
  const slot = plan ? plannedSlot(plan, event, windowMs, where ?? null) : null;
  if (plan && slot !== null) {
    // The planned count read here, not through `count`, and compared directly (a count is a whole
    // number, which the comparator would only check again): two calls less per candidate.
    const direct = plannedCountTest(condition, plan, slot, at, why);
    if (direct) return direct;
    return (scope, trace) => {
      const result = wanted(plannedCount(scope, plan, slot), scope.now);
      if (trace) trace(at, result, why);
      return result;
    };
  }
  const count = windowedCount(plan, event, windowMs, where ?? null);
  return (scope, trace) => {
    const result = wanted(count(scope), scope.now);
    if (trace) trace(at, result, why);
    return result;
  };
}

/**
 * A planned count compared with the condition's whole-number bound, one closure per operator that
 * reads the count and compares it itself: the answer the operator's comparator gives for a count
 * (always a finite number), without the two calls through it and the reader.
 */
function plannedCountTest(
  condition: ConditionWith<"countWithin">,
  plan: CountPlan,
  slot: number,
  at: string,
  why: string,
): Test | null {
  const bound = condition.value;
  if (!Number.isFinite(bound)) return null;
  const told = (trace: Parameters<Test>[1], result: boolean) => {
    if (trace) trace(at, result, why);
    return result;
  };
  switch (condition.op) {
    case "gte":
      return (scope, trace) => told(trace, plannedCount(scope, plan, slot) >= bound);
    case "gt":
      return (scope, trace) => told(trace, plannedCount(scope, plan, slot) > bound);
    case "lte":
      return (scope, trace) => told(trace, plannedCount(scope, plan, slot) <= bound);
    case "lt":
      return (scope, trace) => told(trace, plannedCount(scope, plan, slot) < bound);
    case "eq":
      return (scope, trace) => told(trace, plannedCount(scope, plan, slot) === bound);
    default:
      return null;
  }
}

const RATE_BOUNDS = [
  ["gte", (rate: number, bound: number) => rate >= bound],
  ["gt", (rate: number, bound: number) => rate > bound],
  ["lte", (rate: number, bound: number) => rate <= bound],
  ["lt", (rate: number, bound: number) => rate < bound],
] as const;

/**
 * Opens per send (`of` per `per`) in a window, within every bound given. Below `minCount` sends the
 * rate says nothing (1 open of 1 send is not a 100% reader), so the condition is false and the
 * explanation says there were not enough.
 */
function eventRate(condition: ConditionWith<"rate">, at: string, plan: CountPlan | undefined): Test {
  const { of, per, within, minCount = 1 } = condition.rate;
  const withinMs = parseDuration(within) ?? 0;
  const sent = windowedCount(plan, per, withinMs, null);
  const opened = windowedCount(plan, of, withinMs, null);
  const bounds = RATE_BOUNDS.flatMap(([op, holds]) => {
    const bound = condition.rate[op];
    return bound === undefined ? [] : [{ op, bound, holds }];
  });
  const wanted = bounds.map(({ op, bound }) => `${op} ${bound}`).join(", ");
  return (scope, trace) => {
    const base = sent(scope);
    if (base < minCount) {
      if (trace) trace(at, false, `not enough ${per}: ${base} in ${within}, at least ${minCount} needed`);
      return false;
    }
    const hits = opened(scope);
    const rate = hits / base;
    const result = bounds.every(({ bound, holds }) => holds(rate, bound));
    if (trace)
      trace(
        at,
        result,
        `${of} per ${per} in ${within} is ${hits}/${base} = ${+rate.toFixed(3)}, wanted ${wanted}`,
      );
    return result;
  };
}

/** A countWithin's `where`: which of the counted events qualify (validation refuses a bad one). */
function eventFilter(where: NonNullable<ConditionWith<"countWithin">["countWithin"]["where"]>) {
  const segments = where.path.split(".");
  const compare = comparator(where.op, where.value);
  if (typeof compare === "string") return () => false;
  // The common shape (event.props.category), read without the generic walk: this runs once per
  // event in the window, the engine's hottest loop.
  if (segments[0] === "event" && segments[1] === "props" && segments.length === 3)
    return eventPropFilter(segments[2]!, compare);
  if (segments[0] === "event")
    return (event: VisitorEvent, now: number) => compare(readPath(event, segments, 1), now);
  return () => false;
}

function eventPropFilter(key: string, compare: Comparison): (event: VisitorEvent, now: number) => boolean {
  return (event, now) => {
    const props = event.props;
    return (
      typeof props === "object" && props !== null && Object.hasOwn(props, key) && compare(props[key], now)
    );
  };
}

function pathComparison(condition: ConditionWith<"path">, at: string): Test {
  const segments = condition.path.split(".");
  const compare = comparator(condition.op, condition.value);
  if (typeof compare === "string") return traced(at, () => false, compare);
  const why = `${condition.path} ${condition.op} ${JSON.stringify(condition.value) ?? ""}`.trim();
  // A date comparison on something that is no date says so: the CRM sent text, not a timestamp.
  const readsDate = condition.op === "olderThan" || condition.op === "within";
  const notADate = `${condition.path} is not a date`;
  const whyNot = (actual: unknown) => (readsDate && dateOf(actual) === null ? notADate : why);
  // Made once: an explained decision tells it for every candidate whose trait is missing.
  const missing = `${condition.path} is missing`;
  const read = pathReader(segments);
  if (segments.length === 2 && segments[0] === "traits") {
    // A trait (the most common path), read here rather than through `read`: one call less.
    const key = segments[1]!;
    const direct = traitTest(condition, key, at, why, missing);
    if (direct) return direct;
    return (scope, trace) => {
      const traits = scope.traits;
      const actual =
        typeof traits === "object" && traits !== null && Object.hasOwn(traits, key) ? traits[key] : undefined;
      const result = compare(actual, scope.now);
      if (trace) trace(at, result, actual === undefined ? missing : whyNot(actual));
      return result;
    };
  }
  if (condition.op === "in") {
    // One of a list (a campaign, a country): tested here, without a call through the comparator.
    const values = new Set(condition.value as readonly unknown[]);
    return (scope, trace) => {
      const actual = read(scope);
      const result = Array.isArray(actual)
        ? actual.some((element) => values.has(element))
        : values.has(actual);
      if (trace) trace(at, result, actual === undefined ? missing : why);
      return result;
    };
  }
  return (scope, trace) => {
    const actual = read(scope);
    const result = compare(actual, scope.now);
    if (trace) trace(at, result, actual === undefined ? missing : whyNot(actual));
    return result;
  };
}

/** The trait `key` of the scope's traits (own keys only), or undefined. */
function traitOf(traits: EvalScope["traits"], key: string): unknown {
  return typeof traits === "object" && traits !== null && Object.hasOwn(traits, key)
    ? traits[key]
    : undefined;
}

/**
 * The trait comparisons audiences make most (equal to a value, a number bound), tested in the
 * closure itself: the answer the operator's comparator gives, without a call through it.
 */
function traitTest(
  condition: ConditionWith<"path">,
  key: string,
  at: string,
  why: string,
  missing: string,
): Test | null {
  const expected: unknown = condition.value;
  const told = (trace: Parameters<Test>[1], result: boolean, actual: unknown) => {
    if (trace) trace(at, result, actual === undefined ? missing : why);
    return result;
  };
  if (condition.op === "eq" && (typeof expected === "string" || typeof expected === "boolean"))
    return (scope, trace) => {
      const actual = traitOf(scope.traits, key);
      return told(trace, actual === expected, actual);
    };
  if (typeof expected !== "number" || !Number.isFinite(expected)) return null;
  const bound = expected;
  switch (condition.op) {
    case "eq":
      return (scope, trace) => {
        const actual = traitOf(scope.traits, key);
        return told(trace, actual === bound, actual);
      };
    case "gte":
      return (scope, trace) => {
        const actual = traitOf(scope.traits, key);
        return told(trace, typeof actual === "number" && Number.isFinite(actual) && actual >= bound, actual);
      };
    case "gt":
      return (scope, trace) => {
        const actual = traitOf(scope.traits, key);
        return told(trace, typeof actual === "number" && Number.isFinite(actual) && actual > bound, actual);
      };
    case "lte":
      return (scope, trace) => {
        const actual = traitOf(scope.traits, key);
        return told(trace, typeof actual === "number" && Number.isFinite(actual) && actual <= bound, actual);
      };
    case "lt":
      return (scope, trace) => {
        const actual = traitOf(scope.traits, key);
        return told(trace, typeof actual === "number" && Number.isFinite(actual) && actual < bound, actual);
      };
    default:
      return null;
  }
}

/** An event (add_to_cart) not followed by any of the closing ones (purchase) for a while. */
function silence(condition: ConditionWith<"silence">, at: string): Test {
  const { after, without, for: quiet, within } = condition.silence;
  const quietMs = parseDuration(quiet) ?? 0;
  const withinMs = within ? (parseDuration(within) ?? Number.POSITIVE_INFINITY) : Number.POSITIVE_INFINITY;
  const why = `${after} then no ${without.join("/")} for ${quiet}`;
  // One closure that reads the state itself: this runs per candidate.
  return (scope, trace) => {
    const result = silentSince(scope.state, scope.now, after, without, quietMs, withinMs);
    if (trace) trace(at, result, why);
    return result;
  };
}

/** An `after` event at least `quietMs` (at most `withinMs`) ago, with none of `without` since it. */
function silentSince(
  state: EvalScope["state"],
  now: number,
  after: string,
  without: readonly string[],
  quietMs: number,
  withinMs: number,
): boolean {
  if (!state) return false;
  const openedAt = own(state.lastByType, after);
  if (openedAt === undefined) return false;
  const quietFor = now - openedAt;
  if (quietFor < quietMs || quietFor > withinMs) return false;
  for (const type of without) {
    const closedAt = own(state.lastByType, type);
    if (closedAt !== undefined && closedAt >= openedAt) return false;
  }
  return true;
}

/** Nothing the person did for a while: what the brand sent them meanwhile does not count. */
function inactivity(condition: ConditionWith<"inactive">, at: string): Test {
  const forMs = parseDuration(condition.inactive.for) ?? 0;
  return traced(
    at,
    (scope) => {
      const lastActive = lastActivityOf(scope);
      return lastActive !== null && scope.now - lastActive >= forMs;
    },
    `inactive for ${condition.inactive.for}`,
  );
}

function intentLevel(condition: ConditionWith<"intent">, at: string): Test {
  const { dimension, top, above } = condition.intent;
  const why = top ? `top intent is ${top}` : `intent ${dimension ?? "(top)"} above ${above ?? 0}`;
  if (top === undefined && dimension) {
    // The common shape (a dimension above a level), tested in one closure: these run per candidate.
    const level = above ?? 0;
    return (scope, trace) => {
      const result = (intentOf(scope)[dimension] ?? 0) > level;
      if (trace) trace(at, result, why);
      return result;
    };
  }
  const holds = (scope: EvalScope): boolean => {
    if (top !== undefined) {
      const strongest = topOf(scope);
      if (strongest.dimension !== top) return false;
      return above === undefined || strongest.value > above;
    }
    const value = dimension ? (intentOf(scope)[dimension] ?? 0) : topOf(scope).value;
    return value > (above ?? 0);
  };
  return (scope, trace) => {
    const result = holds(scope);
    if (trace) trace(at, result, why);
    return result;
  };
}

/**
 * The visitor's strongest content tag (scope.ts affinityOf: decayed with settings.affinity.halfLife,
 * else counted), seen on at least `min` of their events.
 */
function contentAffinity(condition: ConditionWith<"affinity">, at: string): Test {
  const { tag, min = 2 } = condition.affinity;
  return traced(
    at,
    (scope) => {
      const strongest = topTagOf(scope);
      return strongest.tag === tag && strongest.count >= min;
    },
    `strongest content affinity is ${tag}`,
  );
}

function channelPreference(condition: ConditionWith<"preferredChannel">, at: string): Test {
  const channel = condition.preferredChannel;
  return traced(
    at,
    (scope) => (scope.state ? preferredChannel(scope.state.engagement).channel === channel : false),
    `prefers ${channel}`,
  );
}

function consentGiven(condition: ConditionWith<"consent">, at: string): Test {
  const purpose = condition.consent;
  return traced(at, (scope) => scope.consent[purpose] === true, `consent for ${purpose}`);
}

/** In the experiment's given variant, or, with none given, in any variant but the holdout. */
function experimentArm(condition: ConditionWith<"experiment">, at: string): Test {
  const { experiment, variant } = condition;
  return traced(
    at,
    (scope) => {
      const assigned = own(scope.assignments, experiment);
      return variant === undefined ? assigned !== undefined && assigned !== "holdout" : assigned === variant;
    },
    `in experiment ${experiment}${variant ? ` as ${variant}` : ""}`,
  );
}

/** From `from` (inclusive) to `to` (exclusive) in the visitor's timezone; a range may span midnight. */
function timeOfDay(condition: ConditionWith<"timeOfDay">, at: string): Test {
  const toMinutes = (time: string) => Number(time.slice(0, 2)) * 60 + Number(time.slice(3, 5));
  const from = toMinutes(condition.timeOfDay.from);
  const to = toMinutes(condition.timeOfDay.to);
  return traced(
    at,
    (scope) => {
      const minutes = localClockOf(scope).minutes;
      return from <= to ? minutes >= from && minutes < to : minutes >= from || minutes < to;
    },
    `local time between ${condition.timeOfDay.from} and ${condition.timeOfDay.to}`,
  );
}

function dayOfWeek(condition: ConditionWith<"dayOfWeek">, at: string): Test {
  const days = new Set(condition.dayOfWeek);
  return traced(
    at,
    (scope) => days.has(localClockOf(scope).dow),
    `day of week in ${condition.dayOfWeek.join(",")}`,
  );
}
