import type { Condition, RulesDocument } from "./schema.ts";
import { conditionRoots, eachCondition } from "./validate.ts";

/**
 * Which event types a rules version reads through the visitor's hourly counters, and what a new
 * version that starts reading one means for visitors already there (docs/decisions.md, record 21).
 *
 * A windowed count (countWithin, rate) reads the event log, and the counters for the part of its
 * window the log has let go (a busy visitor's 500 events can span less than the window). The
 * visitor's object counts only the types listed here, so the arrival of any other type costs no
 * counter.
 */

/** The event types one condition (not its parts) reads through counters. */
function typesRead(condition: Condition): string[] {
  // A filtered count reads the events themselves (counters cannot filter): the log only.
  if ("countWithin" in condition) return condition.countWithin.where ? [] : [condition.countWithin.event];
  if ("rate" in condition) return [condition.rate.of, condition.rate.per];
  return [];
}

/** Every condition that reads counters, with its JSON path and the types it reads. */
function counterReaders(doc: RulesDocument): Array<{ at: string; types: string[] }> {
  const readers: Array<{ at: string; types: string[] }> = [];
  for (const [root, rootAt] of conditionRoots(doc)) {
    // A signal's condition reads the arriving event, not the visitor's history.
    if (rootAt.startsWith("signals")) continue;
    eachCondition(root, rootAt, (condition, at) => {
      const types = typesRead(condition);
      if (types.length) readers.push({ at, types });
    });
  }
  return readers;
}

/**
 * The event types any audience, segment, named condition, list item or journey condition reads
 * through counters.
 *
 * @example countedTypes(doc) // Set { "add_to_cart", "email_open", "email_send" }
 */
export function countedTypes(doc: RulesDocument): ReadonlySet<string> {
  return new Set(counterReaders(doc).flatMap((reader) => reader.types));
}

/**
 * `rules diff`'s warnings: a condition of the new version reads counters of a type the old one did
 * not count. Visitors' counters of that type start from their log when the version arrives, so the
 * condition reads right over what the log holds; a visitor whose log holds less than the window
 * (more events than the log keeps in it) reads short until the window has passed since publishing.
 */
export function newlyCounted(before: RulesDocument, after: RulesDocument): string[] {
  const counted = countedTypes(before);
  const lines: string[] = [];
  for (const { at, types } of counterReaders(after)) {
    const fresh = types.filter((type) => !counted.has(type));
    if (fresh.length === 0) continue;
    lines.push(
      `! ${at}: ${fresh.join(", ")} not counted by version ${before.version}: right over each visitor's event log (EVENT_LOG_MAX events, EVENT_LOG_MAX_AGE_DAYS days); a visitor with more events than the log keeps in the window reads short until the window has passed since publishing`,
    );
  }
  return lines;
}
