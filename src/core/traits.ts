/** Traits and JSON from outside: prototype-safe checks and the merge strategies of identity stitching. */

/** Objects built from parsed JSON onto prototype-free records, refusing keys that could pollute. */
export const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** What is wrong with a parsed JSON value's shape, with the dotted path where it was found. */
export type JsonShapeProblem =
  | { readonly reason: "forbidden_key"; readonly path: string }
  | { readonly reason: "too_deep"; readonly path: string };

type Node = {
  readonly value: object;
  readonly depth: number;
  readonly key: string;
  readonly parent: Node | null;
};

/** The dotted path of `node` (of its key `last`, when given); `(body)` for the top value. */
function pathOf(node: Node, last?: string): string {
  const keys: string[] = last === undefined ? [] : [last];
  for (let at: Node | null = node; at?.parent; at = at.parent) keys.push(at.key);
  return keys.reverse().join(".") || "(body)";
}

/**
 * One walk over a parsed JSON value: a forbidden key anywhere (however deep: no cut-off), and
 * whether arrays and objects nest deeper than `maxDepth` (the top value is level 1). Iterative, so
 * a 100,000-deep body cannot overflow the stack; bounded by the size of what was parsed. A
 * forbidden key wins over depth: it is the one a caller must never see stored.
 */
export function inspectJson(value: unknown, maxDepth: number): JsonShapeProblem | null {
  if (value === null || typeof value !== "object") return null;
  let tooDeep: Node | null = null;
  const stack: Node[] = [{ value, depth: 1, key: "", parent: null }];
  for (let node = stack.pop(); node; node = stack.pop()) {
    if (node.depth > maxDepth && !tooDeep) tooDeep = node;
    const isArray = Array.isArray(node.value);
    for (const key of Object.keys(node.value)) {
      const child = (node.value as Record<string, unknown>)[key];
      if (!isArray && FORBIDDEN_KEYS.has(key)) return { reason: "forbidden_key", path: pathOf(node, key) };
      if (child !== null && typeof child === "object")
        stack.push({ value: child, depth: node.depth + 1, key, parent: node });
    }
  }
  return tooDeep ? { reason: "too_deep", path: pathOf(tooDeep) } : null;
}

/** The path of the first forbidden key at any depth, or null. */
export function findForbiddenKey(value: unknown): string | null {
  const problem = inspectJson(value, Number.POSITIVE_INFINITY);
  return problem?.reason === "forbidden_key" ? problem.path : null;
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
