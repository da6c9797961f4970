/**
 * The hand-written reference for decide() on the shared workload (bench/decide-workload.ts): the
 * decider a good engineer would write by hand for exactly these rules, with no rules engine. What
 * it does, so its figures can be judged:
 * - The rules are code: a table built once (at "write time") from the same formulas the rules
 *   document is generated from, each placement's candidates in priority order, each audience's
 *   parameters already parsed (windows in ms, thresholds, the two campaign names), each winner's
 *   markup split around its one placeholder.
 * - Per call, from the same stored snapshot decide() reads (the visitor's VisitorState): the 8
 *   intent scores decayed to now exactly as the engine's model defines them (value × 2^(−Δt/half-life))
 *   and the strongest one; then each placement's candidates in priority order, stopping at the first
 *   whose audience holds and whose frequency cap is not reached (the page needs nothing more).
 * - Audiences are direct field reads: traits, the query, `lastByType` for the cart left alone; a
 *   windowed count walks the event log (sorted oldest first) backwards from the newest event and
 *   stops at the window's start; a segment is worked out once per call when first needed.
 * - The winner's fragment is its two literal halves around the HTML-escaped first name.
 * What it does not do: validate its inputs (decide() never throws on any shape it is handed; this
 * trusts them), explain, or know any rules but these. It does not index the log by type per call:
 * for one visitor the backward walk is the obvious code, and it is what the counts cost here.
 */
import { escapeHtml } from "../src/core/escape.ts";
import type { VisitorState } from "../src/core/model.ts";
import { type BenchVisitor, CATEGORIES, NOW, PLACEMENTS, SEGMENTS, TYPES } from "./decide-workload.ts";

const MINUTE = 60e3;
const DAY = 86400e3;
/** Every dimension's half-life in the workload (7 days). */
const HALF_LIFE = 7 * DAY;

type Audience =
  | {
      readonly kind: "tierAndIntent";
      readonly tier: string;
      readonly dimension: string;
      readonly above: number;
    }
  | { readonly kind: "count"; readonly type: string; readonly windowMs: number; readonly min: number }
  | { readonly kind: "cartLeft"; readonly quietMs: number }
  | {
      readonly kind: "campaignOrValue";
      readonly campaigns: readonly [string, string];
      readonly value: number;
    }
  | { readonly kind: "segment"; readonly segment: number };

interface Candidate {
  readonly id: string;
  readonly audience: Audience;
  /** Shown at most 3 times a day, or uncapped. */
  readonly capped: boolean;
  readonly before: string;
  readonly after: string;
}

export interface ReferenceDecision {
  readonly placement: string;
  readonly experience: string | null;
  readonly html: string | null;
}

export interface ReferenceResult {
  readonly decisions: readonly ReferenceDecision[];
  readonly segments: readonly string[] | null;
  readonly intent: { readonly top: string | null; readonly scores: Readonly<Record<string, number>> };
  readonly exposures: ReadonlyArray<{ readonly experience: string; readonly placement: string }>;
}

function audienceOf(i: number): Audience {
  switch (i % 5) {
    case 0:
      return {
        kind: "tierAndIntent",
        tier: i % 3 === 0 ? "gold" : "silver",
        dimension: CATEGORIES[i % CATEGORIES.length]!,
        above: i % 7,
      };
    case 1:
      return {
        kind: "count",
        type: TYPES[i % TYPES.length]!,
        windowMs: (1 + (i % 14)) * DAY,
        min: 3 + (i % 20),
      };
    case 2:
      return { kind: "cartLeft", quietMs: (5 + i) * MINUTE };
    case 3:
      return { kind: "campaignOrValue", campaigns: [`c${i}`, `c${i + 1}`], value: 100 * i };
    default:
      return { kind: "segment", segment: i % SEGMENTS };
  }
}

/** Events of `type` in (now − windowMs, now], walking back from the newest; those `category` names when given. */
function countWithin(
  state: VisitorState,
  now: number,
  type: string,
  windowMs: number,
  category: string | null,
): number {
  const events = state.events;
  const since = now - windowMs;
  let n = 0;
  for (let k = events.length - 1; k >= 0; k--) {
    const event = events[k]!;
    if (event.ts <= since) break;
    if (event.ts <= now && event.type === type && (category === null || event.props.category === category))
      n++;
  }
  return n;
}

/**
 * The intent scores decayed to `now` as the engine's model defines them (value × 2^(−Δt/half-life),
 * a time before the score's reading the stored value) and the strongest (ties to the first name in
 * order); shared by both baselines (bench/closure-engine.ts), which report them as decide() does.
 */
export function decayedIntents(
  state: VisitorState,
  halfLives: ReadonlyArray<readonly [dimension: string, halfLifeMs: number]>,
  now: number,
): ReferenceResult["intent"] {
  const scores: Record<string, number> = {};
  let top: string | null = null;
  let topValue = 0;
  for (const [dimension, halfLife] of halfLives) {
    const score = state.intent[dimension];
    if (!score) continue;
    const dt = now - score.ts;
    const value = dt > 0 ? score.value * 2 ** (-dt / halfLife) : score.value;
    scores[dimension] = value;
    if (value > topValue || (value === topValue && top !== null && dimension < top)) {
      top = dimension;
      topValue = value;
    }
  }
  return { top, scores };
}

/** The reference for `scaledDoc(experienceCount)`: call it per visitor, with or without the segment list. */
export function referenceDecider(experienceCount: number) {
  const placements: Candidate[][] = Array.from({ length: PLACEMENTS }, () => []);
  // Priority 200 − i: lower i first, which is the order they are pushed in.
  for (let i = 0; i < experienceCount; i++)
    placements[i % PLACEMENTS]!.push({
      id: `x-${i}`,
      audience: audienceOf(i),
      capped: i % 4 === 0,
      before: `<div class="x${i}">Hello `,
      after: `, offer ${i}</div>`,
    });
  const placementIds = placements.map((_, p) => `slot-${p}`);
  const halfLives = CATEGORIES.map((dimension) => [dimension, HALF_LIFE] as const);
  const segmentIds = Array.from({ length: SEGMENTS }, (_, s) => `seg-${s}`);

  return (visitor: BenchVisitor, listSegments: boolean, now = NOW): ReferenceResult => {
    const { state, traits, context } = visitor;
    const { top, scores } = decayedIntents(state, halfLives, now);
    const name = traits.firstName;
    const shownName = typeof name === "string" && name.length > 0 ? escapeHtml(name) : "there";
    // 1: in, 0: out, -1: not worked out yet.
    const segmentMemo = new Int8Array(SEGMENTS).fill(-1);
    const inSegment = (s: number): boolean => {
      if (segmentMemo[s] === -1) {
        const member =
          traits.firstName !== undefined &&
          traits.firstName !== null &&
          countWithin(state, now, "product_view", 7 * DAY, CATEGORIES[s % CATEGORIES.length]!) >= s;
        segmentMemo[s] = member ? 1 : 0;
      }
      return segmentMemo[s] === 1;
    };
    const holds = (audience: Audience): boolean => {
      switch (audience.kind) {
        case "tierAndIntent":
          return traits.tier === audience.tier && (scores[audience.dimension] ?? 0) > audience.above;
        case "count":
          return countWithin(state, now, audience.type, audience.windowMs, null) >= audience.min;
        case "cartLeft": {
          const cartAt = state.lastByType.add_to_cart;
          if (cartAt === undefined || now - cartAt < audience.quietMs) return false;
          const purchaseAt = state.lastByType.purchase;
          return purchaseAt === undefined || purchaseAt < cartAt;
        }
        case "campaignOrValue": {
          const campaign = context.query.utm_campaign;
          if (campaign === audience.campaigns[0] || campaign === audience.campaigns[1]) return true;
          const value = traits.lifetimeValue;
          return typeof value === "number" && Number.isFinite(value) && value >= audience.value;
        }
        case "segment":
          return inSegment(audience.segment);
      }
    };
    const capReached = (id: string): boolean => {
      const times = state.exposures[id];
      if (!times) return false;
      let shown = 0;
      for (const t of times) if (t > now - DAY) shown++;
      return shown >= 3;
    };
    const decisions: ReferenceDecision[] = [];
    const exposures: Array<{ experience: string; placement: string }> = [];
    for (let p = 0; p < PLACEMENTS; p++) {
      const placement = placementIds[p]!;
      let decision: ReferenceDecision = { placement, experience: null, html: null };
      for (const candidate of placements[p]!) {
        if (!holds(candidate.audience) || (candidate.capped && capReached(candidate.id))) continue;
        decision = {
          placement,
          experience: candidate.id,
          html: candidate.before + shownName + candidate.after,
        };
        exposures.push({ experience: candidate.id, placement });
        break;
      }
      decisions.push(decision);
    }
    const segments = listSegments ? segmentIds.filter((_, s) => inSegment(s)) : null;
    return { decisions, segments, intent: { top, scores }, exposures };
  };
}
