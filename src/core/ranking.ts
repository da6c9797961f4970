import { affinityOf, type EvalScope, lastCategoryOf, type Test } from "./scope.ts";

/**
 * Ranked lists: "show what they like first" as one rule. A list's items (products, articles) carry
 * content tags and a category; for one visitor the items their audience admits are ordered by
 *
 * 1. with `lastCategoryFirst`, the items of the category the visitor browsed last, first;
 * 2. the visitor's affinity for the item's tags (scope.ts affinityOf: summed over its tags, decayed
 *    like intent when the rules give a half-life);
 * 3. the order the list declares them in (the merchandiser's own order, and a stable tie-break, so a
 *    page and the decision API answer the same list in the same order),
 *
 * and the first `top` are kept. Pure, and cheap when no rule ranks: nothing here runs unless a
 * content asks for `items`.
 */

/** Most items one content may show: a ranked list is a shelf, not a catalogue. */
export const MAX_RANKED = 20;

/** A field an item shows (a title, a URL, a price). */
export type ItemField = string | number | boolean;

/** Keys a ranked item always has: the ranking fills them, so an item's own fields may not use them. */
export const RANKED_ITEM_KEYS = ["id", "category", "tags", "audience", "rank", "score"] as const;

/** A list item as compiled once per rules version. */
export interface CompiledListItem {
  readonly id: string;
  readonly category: string | null;
  /** Distinct tags, so an item tagged twice with one tag is not counted twice. */
  readonly tags: readonly string[];
  readonly audience: Test | null;
  readonly fields: Readonly<Record<string, ItemField>>;
}

/** What a content's `items` asks for, compiled. */
export interface RankSpec {
  readonly items: readonly CompiledListItem[];
  readonly top: number;
  readonly lastCategoryFirst: boolean;
}

/**
 * One item of a decision's ranked list: its own fields, with its id, category, 1-based rank and the
 * affinity score it was ranked by. Templates read these as `{{ item.title }}`, `{{ item.rank }}`.
 */
export type RankedItem = Readonly<Record<string, ItemField | null>> & {
  readonly id: string;
  readonly category: string | null;
  readonly rank: number;
  readonly score: number;
};

interface Candidate {
  readonly item: CompiledListItem;
  readonly index: number;
  readonly inCategory: boolean;
  readonly score: number;
}

/**
 * The list for this visitor, best first.
 *
 * @example
 * rankItems({ items, top: 3, lastCategoryFirst: true }, scope)
 * // [{ id: "alpine-boot", category: "hiking", rank: 1, score: 2.83, title: "Alpine Boot", … }, …]
 */
export function rankItems(spec: RankSpec, scope: EvalScope): RankedItem[] {
  const affinity = affinityOf(scope);
  const lastCategory = spec.lastCategoryFirst ? lastCategoryOf(scope) : null;
  const candidates: Candidate[] = [];
  spec.items.forEach((item, index) => {
    if (item.audience && !item.audience(scope)) return;
    let score = 0;
    for (const tag of item.tags) score += affinity.get(tag)?.weight ?? 0;
    const inCategory = lastCategory !== null && item.category === lastCategory;
    candidates.push({ item, index, inCategory, score });
  });
  candidates.sort(
    (a, b) => Number(b.inCategory) - Number(a.inCategory) || b.score - a.score || a.index - b.index,
  );
  const top = Math.min(spec.top, MAX_RANKED);
  return candidates.slice(0, top).map((candidate, i) => ({
    ...candidate.item.fields,
    id: candidate.item.id,
    category: candidate.item.category,
    rank: i + 1,
    // Rounded for reading; the order above used the exact sums.
    score: Math.round(candidate.score * 1000) / 1000,
  }));
}
