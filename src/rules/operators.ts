import { parseDuration } from "./duration.ts";
import { unsafeRegex } from "./regex-safety.ts";
import type { ComparisonOp } from "./schema.ts";

/**
 * The comparison operators: each rule's `op` and `value` turned once, at compile time, into a test
 * of the actual value. A test never throws: an actual value of the wrong type is simply no match.
 */

/** A test of the actual value read at a condition's path, at the decision's time (epoch ms). */
export type Comparison = (actual: unknown, now: number) => boolean;

type Version = [number, number, number];

/**
 * The comparison of an actual value with the rule's, or, when the rule's value can never match the
 * way the author meant, why (validation reports the same words at the value's JSON path, so no such
 * rule is published).
 */
export function comparator(op: ComparisonOp, expected: unknown): Comparison | string {
  if (op !== "exists" && expected === undefined) return `${op} needs a value`;
  switch (op) {
    case "eq":
    case "neq":
      return equality(op, expected);
    case "lt":
    case "lte":
    case "gt":
    case "gte":
      return ordering(op, expected);
    case "in":
      return membership(expected);
    case "contains":
      return containment(expected);
    case "startsWith":
    case "endsWith":
      return affix(op, expected);
    case "exists":
      return presence(expected);
    case "between":
      return range(expected);
    case "matches":
      return pattern(expected);
    case "olderThan":
    case "within":
      return age(op, expected);
    default:
      return versionOrdering(op, expected);
  }
}

const describe = (value: unknown): string =>
  typeof value === "string"
    ? JSON.stringify(value.slice(0, 40))
    : (JSON.stringify(value) ?? String(value)).slice(0, 40);

const isPrimitive = (value: unknown): value is string | number | boolean =>
  typeof value === "string" || typeof value === "number" || typeof value === "boolean";

function equality(op: "eq" | "neq", expected: unknown): Comparison | string {
  if (!isPrimitive(expected)) return `${op} needs a string, number or boolean value`;
  return op === "eq"
    ? (actual) => isPrimitive(actual) && actual === expected
    : (actual) => isPrimitive(actual) && actual !== expected;
}

/** Numbers compare with numbers, strings with strings (code-unit order); mixed types never match. */
function ordering(op: "lt" | "lte" | "gt" | "gte", expected: unknown): Comparison | string {
  if (!(typeof expected === "number" && Number.isFinite(expected)) && typeof expected !== "string")
    return `${op} needs a number or string value, not ${describe(expected)}`;
  // One closure per operator and type, comparing directly: audiences run these by the hundred per decision.
  if (typeof expected === "number") {
    const isNumber = (actual: unknown): actual is number =>
      typeof actual === "number" && Number.isFinite(actual);
    if (op === "lt") return (actual) => isNumber(actual) && actual < expected;
    if (op === "lte") return (actual) => isNumber(actual) && actual <= expected;
    if (op === "gt") return (actual) => isNumber(actual) && actual > expected;
    return (actual) => isNumber(actual) && actual >= expected;
  }
  // Strings in code-unit order.
  if (op === "lt") return (actual) => typeof actual === "string" && actual < expected;
  if (op === "lte") return (actual) => typeof actual === "string" && actual <= expected;
  if (op === "gt") return (actual) => typeof actual === "string" && actual > expected;
  return (actual) => typeof actual === "string" && actual >= expected;
}

/** The actual value (or any element of an actual array) is one of the rule's values. */
function membership(expected: unknown): Comparison | string {
  if (!Array.isArray(expected)) return "in needs an array value";
  if (!expected.every(isPrimitive)) return "in needs an array of strings, numbers or booleans";
  const values = new Set(expected);
  return (actual) =>
    Array.isArray(actual)
      ? actual.some((element) => values.has(element))
      : isPrimitive(actual) && values.has(actual);
}

/** A substring of an actual string, or an element of an actual array. */
function containment(expected: unknown): Comparison | string {
  if (!isPrimitive(expected)) return "contains needs a string, number or boolean value";
  return (actual) =>
    typeof actual === "string"
      ? typeof expected === "string" && actual.includes(expected)
      : Array.isArray(actual) && actual.includes(expected);
}

function affix(op: "startsWith" | "endsWith", expected: unknown): Comparison | string {
  if (typeof expected !== "string") return `${op} needs a string value, not ${describe(expected)}`;
  return op === "startsWith"
    ? (actual) => typeof actual === "string" && actual.startsWith(expected)
    : (actual) => typeof actual === "string" && actual.endsWith(expected);
}

/** `exists` with no value or true: present and not null; with false: absent or null. */
function presence(expected: unknown): Comparison | string {
  if (expected !== undefined && typeof expected !== "boolean") return "exists takes true, false or no value";
  return expected === false
    ? (actual) => actual === undefined || actual === null
    : (actual) => actual !== undefined && actual !== null;
}

/** Inclusive at both ends. */
function range(expected: unknown): Comparison | string {
  if (
    !Array.isArray(expected) ||
    expected.length !== 2 ||
    !expected.every((bound) => typeof bound === "number" && Number.isFinite(bound))
  ) {
    return "between needs [low, high] numbers";
  }
  const [low, high] = expected as [number, number];
  if (low > high) return `between needs low ≤ high, got [${low}, ${high}]`;
  return (actual) => typeof actual === "number" && actual >= low && actual <= high;
}

/** Only patterns that cannot backtrack catastrophically, tested on bounded input. */
function pattern(expected: unknown): Comparison | string {
  const problem = unsafeRegex(expected);
  if (problem) return problem;
  const regex = new RegExp(expected as string);
  return (actual) => typeof actual === "string" && actual.length <= 2048 && regex.test(actual);
}

/**
 * How long ago a date was: `olderThan` holds from the duration on (`lastOrderAt` 60 days ago or
 * earlier), `within` before it (in the last 60 days, the instant itself excluded, as countWithin
 * counts). Together they split the past; a date in the future is neither. The duration is parsed
 * here, once; the date once per test.
 */
function age(op: "olderThan" | "within", expected: unknown): Comparison | string {
  const durationMs = typeof expected === "string" ? parseDuration(expected) : null;
  if (durationMs === null) return `${op} needs a duration such as "60d", not ${describe(expected)}`;
  if (durationMs === 0) return `${op} needs a duration longer than zero`;
  return op === "olderThan"
    ? (actual, now) => {
        const at = dateOf(actual);
        return at !== null && at <= now - durationMs;
      }
    : (actual, now) => {
        const at = dateOf(actual);
        return at !== null && at > now - durationMs && at <= now;
      };
}

/** A calendar date or a date-time, with an optional offset (none: UTC), as CRMs export them. */
const ISO_DATE =
  /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
const HAS_OFFSET = /(Z|[+-]\d{2}:?\d{2})$/;
/**
 * Epoch ms before March 1973 are refused: such a number is almost surely epoch seconds (today's are
 * below 2e9), which read as ms would be January 1970 and make every customer "older than 60d".
 */
const EPOCH_MS_FLOOR = 1e11;

/**
 * A trait or event time as epoch ms: an ISO 8601 string or a number of epoch milliseconds; null for
 * anything else. Only ISO text is read, never Date.parse's guesses ("March 7", "07/03/2026"), so a
 * date means the same instant in every runtime; a date-time without an offset is taken as UTC, as
 * the worker's clock is (a calendar date is UTC midnight).
 */
export function dateOf(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) && value >= EPOCH_MS_FLOOR ? value : null;
  if (typeof value !== "string" || value.length > 40 || !ISO_DATE.test(value)) return null;
  const at = Date.parse(value.length > 10 && !HAS_OFFSET.test(value) ? `${value}Z` : value);
  return Number.isNaN(at) ? null : at;
}

function versionOrdering(
  op: "semverEq" | "semverGt" | "semverGte" | "semverLt" | "semverLte",
  expected: unknown,
): Comparison | string {
  const wanted = versionOf(expected);
  if (!wanted) return `${op} needs a version such as "2.1.0", not ${describe(expected)}`;
  const holds =
    op === "semverEq"
      ? (sign: number) => sign === 0
      : op === "semverGt"
        ? (sign: number) => sign > 0
        : op === "semverGte"
          ? (sign: number) => sign >= 0
          : op === "semverLt"
            ? (sign: number) => sign < 0
            : (sign: number) => sign <= 0;
  return (actual) => {
    const have = versionOf(actual);
    return have !== null && holds(compareVersions(have, wanted));
  };
}

/** "2", "2.1", "v2.1.0-beta" → [major, minor, patch]; anything after the numbers is ignored. */
function versionOf(text: unknown): Version | null {
  if (typeof text !== "string") return null;
  const m = /^v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : null;
}

function compareVersions(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}
