import { preferredChannel } from "../core/channels.ts";
import { decayAll, topOfDecayed } from "../core/intent.ts";
import type { Consent, RequestContext, Traits, VisitorEvent, VisitorState } from "../core/model.ts";
import { firstAfter, own } from "../core/visitor-state.ts";
import { parseDuration } from "./duration.ts";
import type { ComparisonOp, Condition } from "./schema.ts";

/**
 * The condition language, compiled once per rules version into closures. Evaluation never throws:
 * a missing path or a value of the wrong type makes a condition false, and the trace (built only
 * when an explanation is asked for) says which condition failed.
 */

/** What conditions read. Lazily filled caches live on the scope for one decision. */
export interface EvalScope {
  readonly now: number;
  readonly traits: Traits;
  readonly context: RequestContext;
  readonly state: VisitorState | null;
  readonly consent: Consent;
  readonly assignments: Record<string, string>;
  readonly halfLives: Readonly<Record<string, number>>;
  readonly event?: VisitorEvent;
  intentCache?: Record<string, number>;
  topCache?: { dimension: string | null; value: number };
  tagCache?: Map<string, number>;
  clockCache?: { minutes: number; dow: number };
  segmentCache?: Map<string, boolean>;
  byTypeCache?: Map<string, VisitorEvent[]>;
  visitorCache?: Record<string, unknown>;
}

export type Trace = (path: string, result: boolean, why: string) => void;
export type Test = (s: EvalScope, trace?: Trace) => boolean;

export function intentOf(s: EvalScope): Record<string, number> {
  if (!s.intentCache) s.intentCache = s.state ? decayAll(s.state.intent, s.now, s.halfLives) : {};
  return s.intentCache;
}

export function topOf(s: EvalScope): { dimension: string | null; value: number } {
  if (!s.topCache) s.topCache = topOfDecayed(intentOf(s));
  return s.topCache;
}

function tagsOf(s: EvalScope): Map<string, number> {
  if (!s.tagCache) {
    const counts = new Map<string, number>();
    for (const e of s.state?.events ?? []) {
      const tags = e.props.tags;
      if (!Array.isArray(tags)) continue;
      for (const t of tags) if (typeof t === "string") counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    s.tagCache = counts;
  }
  return s.tagCache;
}

const clockFormats = new Map<string, Intl.DateTimeFormat>();
const WEEKDAYS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** Minutes since midnight and day of week in the visitor's timezone (UTC when unknown or invalid). */
function clockOf(s: EvalScope): { minutes: number; dow: number } {
  if (s.clockCache) return s.clockCache;
  const tz = s.context.geo.timezone ?? "UTC";
  let format = clockFormats.get(tz);
  if (!format) {
    try {
      format = new Intl.DateTimeFormat("en-US", {
        timeZone: tz,
        hour: "2-digit",
        minute: "2-digit",
        weekday: "short",
        hourCycle: "h23",
      });
    } catch {
      format = new Intl.DateTimeFormat("en-US", {
        timeZone: "UTC",
        hour: "2-digit",
        minute: "2-digit",
        weekday: "short",
        hourCycle: "h23",
      });
    }
    if (clockFormats.size < 500) clockFormats.set(tz, format);
  }
  let hour = 0;
  let minute = 0;
  let dow = 0;
  for (const part of format.formatToParts(s.now)) {
    if (part.type === "hour") hour = Number(part.value) % 24;
    else if (part.type === "minute") minute = Number(part.value);
    else if (part.type === "weekday") dow = WEEKDAYS[part.value] ?? 0;
  }
  s.clockCache = { minutes: hour * 60 + minute, dow };
  return s.clockCache;
}

function rootOf(s: EvalScope, root: string): unknown {
  switch (root) {
    case "traits":
      return s.traits;
    case "context":
      return s.context;
    case "event":
      return s.event;
    case "intent":
      return intentOf(s);
    case "visitor":
      if (!s.visitorCache) s.visitorCache = visitorView(s);
      return s.visitorCache;
    default:
      return undefined;
  }
}

function visitorView(s: EvalScope): Record<string, unknown> {
  return s.state
    ? {
        id: s.state.visitorId,
        sessionCount: s.state.sessionCount,
        firstSeen: s.state.firstSeen,
        lastSeen: s.state.lastSeen,
      }
    : { sessionCount: 0 };
}

export function resolvePath(s: EvalScope, segments: readonly string[]): unknown {
  return readPath(rootOf(s, segments[0]!), segments, 1);
}

function semver(text: unknown): [number, number, number] | null {
  if (typeof text !== "string") return null;
  const m = /^v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : null;
}

function semverCompare(a: [number, number, number], b: [number, number, number]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

const describe = (v: unknown): string =>
  typeof v === "string" ? JSON.stringify(v.slice(0, 40)) : (JSON.stringify(v) ?? String(v)).slice(0, 40);

const isPrimitive = (v: unknown): v is string | number | boolean =>
  typeof v === "string" || typeof v === "number" || typeof v === "boolean";

/**
 * A comparison of an actual value against the rule's value, built once per rule; or, when the
 * rule's value can never match the way the author meant, why (validation reports the same words
 * at the value's JSON path, so no such rule is published).
 */
export function comparator(op: ComparisonOp, expected: unknown): ((actual: unknown) => boolean) | string {
  if (op !== "exists" && expected === undefined) return `${op} needs a value`;
  switch (op) {
    case "eq":
    case "neq":
      if (!isPrimitive(expected)) return `${op} needs a string, number or boolean value`;
      return op === "eq" ? (a) => isPrimitive(a) && a === expected : (a) => isPrimitive(a) && a !== expected;
    case "lt":
    case "lte":
    case "gt":
    case "gte": {
      if (!(typeof expected === "number" && Number.isFinite(expected)) && typeof expected !== "string")
        return `${op} needs a number or string value, not ${describe(expected)}`;
      const cmp =
        op === "lt"
          ? (x: number) => x < 0
          : op === "lte"
            ? (x: number) => x <= 0
            : op === "gt"
              ? (x: number) => x > 0
              : (x: number) => x >= 0;
      return (a) => {
        if (typeof a !== typeof expected) return false;
        if (typeof a === "number") return Number.isFinite(a) && cmp(a - (expected as number));
        return cmp((a as string) < (expected as string) ? -1 : (a as string) > (expected as string) ? 1 : 0);
      };
    }
    case "in": {
      if (!Array.isArray(expected)) return "in needs an array value";
      if (!expected.every(isPrimitive)) return "in needs an array of strings, numbers or booleans";
      const set = new Set(expected);
      return (a) => (Array.isArray(a) ? a.some((x) => set.has(x)) : isPrimitive(a) && set.has(a));
    }
    case "contains":
      if (!isPrimitive(expected)) return "contains needs a string, number or boolean value";
      return (a) =>
        typeof a === "string"
          ? typeof expected === "string" && a.includes(expected)
          : Array.isArray(a) && a.includes(expected);
    case "startsWith":
      if (typeof expected !== "string") return `startsWith needs a string value, not ${describe(expected)}`;
      return (a) => typeof a === "string" && a.startsWith(expected);
    case "endsWith":
      if (typeof expected !== "string") return `endsWith needs a string value, not ${describe(expected)}`;
      return (a) => typeof a === "string" && a.endsWith(expected);
    case "exists":
      if (expected !== undefined && typeof expected !== "boolean")
        return "exists takes true, false or no value";
      return expected === false ? (a) => a === undefined || a === null : (a) => a !== undefined && a !== null;
    case "between": {
      if (
        !Array.isArray(expected) ||
        expected.length !== 2 ||
        !expected.every((x) => typeof x === "number" && Number.isFinite(x))
      ) {
        return "between needs [low, high] numbers";
      }
      const [lo, hi] = expected as [number, number];
      if (lo > hi) return `between needs low ≤ high, got [${lo}, ${hi}]`;
      return (a) => typeof a === "number" && a >= lo && a <= hi;
    }
    case "matches": {
      const problem = unsafeRegex(expected);
      if (problem) return problem;
      const re = new RegExp(expected as string);
      return (a) => typeof a === "string" && a.length <= 2048 && re.test(a);
    }
    default: {
      const want = semver(expected);
      if (!want) return `${op} needs a version such as "2.1.0", not ${describe(expected)}`;
      const test =
        op === "semverEq"
          ? (c: number) => c === 0
          : op === "semverGt"
            ? (c: number) => c > 0
            : op === "semverGte"
              ? (c: number) => c >= 0
              : op === "semverLt"
                ? (c: number) => c < 0
                : (c: number) => c <= 0;
      return (a) => {
        const have = semver(a);
        return have !== null && test(semverCompare(have, want));
      };
    }
  }
}

/**
 * Regexes in rules are bounded: short, no backreferences or lookaround, and no quantified group
 * that itself contains a quantifier (`(a+)+`, `((a*))*`, `(?:x+){2,}` — the shape of catastrophic
 * backtracking). A scanner rather than a regex over the pattern, so nesting and escapes are exact.
 */
export function unsafeRegex(pattern: unknown): string | null {
  if (typeof pattern !== "string") return "matches needs a string pattern";
  if (pattern.length > 200) return "pattern longer than 200 characters";
  const braces = /^\{\d+(,\d*)?\}/;
  // One frame per open group: does anything inside it repeat?
  const frames: boolean[] = [false];
  let i = 0;
  const quantifierAt = (at: number): number => {
    const c = pattern[at];
    if (c === "*" || c === "+" || c === "?") return 1;
    if (c === "{") return braces.exec(pattern.slice(at))?.[0].length ?? 0;
    return 0;
  };
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === "\\") {
      const next = pattern[i + 1] ?? "";
      if (/[1-9]/.test(next) || next === "k") return "backreferences are not allowed";
      i += 2;
    } else if (c === "[") {
      i++;
      if (pattern[i] === "^") i++;
      if (pattern[i] === "]") i++;
      while (i < pattern.length && pattern[i] !== "]") i += pattern[i] === "\\" ? 2 : 1;
      i++;
    } else if (c === "(") {
      if (pattern[i + 1] === "?") {
        const kind = pattern.slice(i + 2, i + 4);
        if (kind[0] === "=" || kind[0] === "!" || kind === "<=" || kind === "<!")
          return "lookaround is not allowed";
      }
      frames.push(false);
      i++;
      continue;
    } else if (c === ")") {
      const inner = frames.length > 1 ? frames.pop()! : false;
      i++;
      const q = quantifierAt(i);
      if (q > 0) {
        if (inner) return "nested quantifiers are not allowed";
        frames[frames.length - 1] = true;
        i += q;
        if (pattern[i] === "?") i++;
      } else if (inner) frames[frames.length - 1] = true;
      continue;
    } else i++;
    const q = quantifierAt(i);
    if (q > 0) {
      frames[frames.length - 1] = true;
      i += q;
      if (pattern[i] === "?") i++;
    }
  }
  try {
    new RegExp(pattern);
  } catch {
    return "not a valid regular expression";
  }
  return null;
}

export interface CompileEnv {
  /** Named conditions and segments, compiled on demand (validation has ruled out cycles). */
  readonly ref: (id: string) => Test;
  readonly segment: (id: string) => Test;
}

/** The visitor's events of one type, oldest first, indexed once per decision. */
function eventsOfType(s: EvalScope, type: string): readonly VisitorEvent[] {
  if (!s.byTypeCache) {
    const index = new Map<string, VisitorEvent[]>();
    for (const e of s.state?.events ?? []) {
      const list = index.get(e.type);
      if (list) list.push(e);
      else index.set(e.type, [e]);
    }
    s.byTypeCache = index;
  }
  return s.byTypeCache.get(type) ?? [];
}

function countEvents(
  s: EvalScope,
  type: string,
  since: number,
  where: ((e: VisitorEvent) => boolean) | null,
): number {
  const events = eventsOfType(s, type);
  // Oldest first: binary search for the first event inside (since, now], then count or filter.
  const start = firstAfter(events, since);
  const end = firstAfter(events, s.now);
  if (!where) return end - start;
  let n = 0;
  for (let i = start; i < end; i++) if (where(events[i]!)) n++;
  return n;
}

/** Reads a dotted path below an object with own-property checks only. */
function readPath(root: unknown, segments: readonly string[], from: number): unknown {
  let current = root;
  for (let i = from; i < segments.length; i++) {
    if (current === null || typeof current !== "object") return undefined;
    const seg = segments[i]!;
    if (!Object.hasOwn(current, seg)) return undefined;
    current = (current as Record<string, unknown>)[seg];
  }
  return current;
}

export function compileCondition(cond: Condition, at: string, env: CompileEnv): Test {
  const done = (test: (s: EvalScope) => boolean, why: string): Test => {
    return (s, trace) => {
      const result = test(s);
      if (trace) trace(at, result, why);
      return result;
    };
  };
  if ("all" in cond) {
    const parts = cond.all.map((c, i) => compileCondition(c, `${at}.all[${i}]`, env));
    return (s, trace) => {
      for (const p of parts) if (!p(s, trace)) return false;
      return true;
    };
  }
  if ("any" in cond) {
    const parts = cond.any.map((c, i) => compileCondition(c, `${at}.any[${i}]`, env));
    return (s, trace) => {
      for (const p of parts) if (p(s, trace)) return true;
      if (trace) trace(at, false, "no alternative matched");
      return false;
    };
  }
  if ("not" in cond) {
    const inner = compileCondition(cond.not, `${at}.not`, env);
    return (s, trace) => {
      const result = !inner(s);
      if (trace) trace(at, result, result ? "negated condition is false" : "negated condition is true");
      return result;
    };
  }
  if ("ref" in cond) {
    const id = cond.ref;
    return (s, trace) => env.ref(id)(s, trace);
  }
  if ("segment" in cond) {
    const id = cond.segment;
    return (s, trace) => {
      if (!trace) return env.segment(id)(s);
      // With a trace, the explanation names the segment and the condition inside it that failed.
      let inner: string | null = null;
      const result = env.segment(id)(s, (path, ok, why) => {
        if (!ok && inner === null) inner = `${path}: ${why}`;
      });
      trace(at, result, inner && !result ? `segment ${id} — ${inner}` : `segment ${id}`);
      return result;
    };
  }
  if ("countWithin" in cond) {
    const { event, window, where } = cond.countWithin;
    const windowMs = parseDuration(window) ?? 0;
    let filter: ((e: VisitorEvent) => boolean) | null = null;
    if (where) {
      const segs = where.path.split(".");
      const cmp = comparator(where.op, where.value);
      filter =
        typeof cmp === "string"
          ? () => false
          : segs[0] === "event" && segs[1] === "props" && segs.length === 3
            ? // The common shape (event.props.category), read without the generic walk: this runs
              // once per event in the window, the engine's hottest loop.
              ((key: string) => (e: VisitorEvent) => {
                const props = e.props;
                return (
                  typeof props === "object" && props !== null && Object.hasOwn(props, key) && cmp(props[key])
                );
              })(segs[2]!)
            : segs[0] === "event"
              ? (e) => cmp(readPath(e, segs, 1))
              : () => false;
    }
    const want = comparator(cond.op, cond.value) as (a: unknown) => boolean;
    return done(
      (s) => want(countEvents(s, event, s.now - windowMs, filter)),
      `count of ${event} in ${window} ${cond.op} ${cond.value}`,
    );
  }
  if ("op" in cond) {
    const segments = cond.path.split(".");
    const compare = comparator(cond.op, cond.value);
    if (typeof compare === "string") return done(() => false, compare);
    const why = `${cond.path} ${cond.op} ${JSON.stringify(cond.value) ?? ""}`.trim();
    return (s, trace) => {
      const actual = resolvePath(s, segments);
      const result = compare(actual);
      if (trace) trace(at, result, actual === undefined ? `${cond.path} is missing` : why);
      return result;
    };
  }
  if ("silence" in cond) {
    const { after, without, for: quiet, within } = cond.silence;
    const quietMs = parseDuration(quiet) ?? 0;
    const withinMs = within ? (parseDuration(within) ?? Number.POSITIVE_INFINITY) : Number.POSITIVE_INFINITY;
    return done(
      (s) => {
        const started = s.state ? own(s.state.lastByType, after) : undefined;
        if (started === undefined) return false;
        const since = s.now - started;
        if (since < quietMs || since > withinMs) return false;
        return without.every((t) => {
          const ended = s.state ? own(s.state.lastByType, t) : undefined;
          return ended === undefined || ended < started;
        });
      },
      `${after} then no ${without.join("/")} for ${quiet}`,
    );
  }
  if ("inactive" in cond) {
    const forMs = parseDuration(cond.inactive.for) ?? 0;
    return done((s) => {
      const last = s.state?.lastSeen;
      return last !== null && last !== undefined && s.now - last >= forMs;
    }, `inactive for ${cond.inactive.for}`);
  }
  if ("intent" in cond) {
    const { dimension, top, above } = cond.intent;
    return done(
      (s) => {
        if (top !== undefined) {
          const t = topOf(s);
          if (t.dimension !== top) return false;
          return above === undefined || t.value > above;
        }
        const value = dimension ? (intentOf(s)[dimension] ?? 0) : topOf(s).value;
        return value > (above ?? 0);
      },
      top ? `top intent is ${top}` : `intent ${dimension ?? "(top)"} above ${above ?? 0}`,
    );
  }
  if ("affinity" in cond) {
    const { tag, min = 2 } = cond.affinity;
    return done((s) => {
      let best: string | null = null;
      let bestCount = 0;
      for (const [t, n] of tagsOf(s)) {
        if (n > bestCount || (n === bestCount && best !== null && t < best)) {
          best = t;
          bestCount = n;
        }
      }
      return best === tag && bestCount >= min;
    }, `strongest content affinity is ${tag}`);
  }
  if ("preferredChannel" in cond) {
    const channel = cond.preferredChannel;
    return done(
      (s) => (s.state ? preferredChannel(s.state.engagement).channel === channel : false),
      `prefers ${channel}`,
    );
  }
  if ("consent" in cond) {
    const purpose = cond.consent;
    return done((s) => s.consent[purpose] === true, `consent for ${purpose}`);
  }
  if ("experiment" in cond) {
    const { experiment, variant } = cond;
    return done(
      (s) => {
        const assigned = own(s.assignments, experiment);
        return variant === undefined
          ? assigned !== undefined && assigned !== "holdout"
          : assigned === variant;
      },
      `in experiment ${experiment}${variant ? ` as ${variant}` : ""}`,
    );
  }
  if ("timeOfDay" in cond) {
    const toMinutes = (t: string) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3, 5));
    const from = toMinutes(cond.timeOfDay.from);
    const to = toMinutes(cond.timeOfDay.to);
    return done((s) => {
      const m = clockOf(s).minutes;
      return from <= to ? m >= from && m < to : m >= from || m < to;
    }, `local time between ${cond.timeOfDay.from} and ${cond.timeOfDay.to}`);
  }
  const days = new Set(cond.dayOfWeek);
  return done((s) => days.has(clockOf(s).dow), `day of week in ${cond.dayOfWeek.join(",")}`);
}
