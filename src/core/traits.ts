/** Traits and JSON from outside: prototype-safe checks and the merge strategies of identity stitching. */

/** Objects built from parsed JSON onto prototype-free records, refusing keys that could pollute. */
export const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

export function findForbiddenKey(value: unknown, path = "", depth = 0): string | null {
  if (depth > 20 || value === null || typeof value !== "object") return null;
  for (const key of Object.keys(value)) {
    const here = path ? `${path}.${key}` : key;
    if (FORBIDDEN_KEYS.has(key)) return here;
    const inner = findForbiddenKey((value as Record<string, unknown>)[key], here, depth + 1);
    if (inner) return inner;
  }
  return null;
}

export type MergeStrategy = "mostRecent" | "oldest" | "add" | "firstNonEmpty";

const isEmpty = (v: unknown) => v === undefined || v === null || v === "";

/**
 * Merges traits of an anonymous profile into a known one, trait by trait, with the strategy the
 * rules name (Apache Unomi's merge strategies); unnamed traits keep the known profile's value.
 */
export function mergeTraits(
  known: Record<string, unknown>,
  incoming: Record<string, unknown>,
  strategies: Readonly<Record<string, MergeStrategy>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = Object.assign(Object.create(null), known);
  for (const [key, value] of Object.entries(incoming)) {
    if (FORBIDDEN_KEYS.has(key)) continue;
    const current = out[key];
    switch (strategies[key] ?? "firstNonEmpty") {
      case "mostRecent":
        if (!isEmpty(value)) out[key] = value;
        break;
      case "oldest":
        if (isEmpty(current)) out[key] = value;
        break;
      case "add":
        out[key] =
          typeof current === "number" && typeof value === "number"
            ? current + value
            : isEmpty(current)
              ? value
              : current;
        break;
      case "firstNonEmpty":
        if (isEmpty(current)) out[key] = value;
        break;
    }
  }
  return { ...out };
}
