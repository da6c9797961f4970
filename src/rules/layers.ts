import type { CompiledLayer } from "../core/compiled-rules.ts";
import { LAYER_BUCKETS } from "../core/layers.ts";
import { GLOBAL_HOLDOUT, type RulesDocument } from "./schema.ts";

/**
 * How a document's layers are cut (docs/bucketing.md, "Layers"): each experiment of a layer owns
 * the buckets [from, from + share) of the layer's 10,000, in document order, and the validator's
 * problems with that cut. The compiler and the validator read the same layout, so what is checked
 * is what runs.
 */

/** A problem with a layer, at a JSON path (the validator's RulesProblem). */
interface LayerProblem {
  readonly path: string;
  readonly message: string;
}

export interface LayerLayout {
  readonly layers: Readonly<Record<string, CompiledLayer>>;
  readonly problems: readonly LayerProblem[];
}

/** A fraction of the layer as a whole number of its buckets (0.01% each). */
const toBuckets = (fraction: number): number => Math.round(fraction * LAYER_BUCKETS);

/** A bucket count as the fraction an author writes, for messages. */
const asFraction = (buckets: number): string => String(buckets / LAYER_BUCKETS);

export function layerLayout(doc: RulesDocument): LayerLayout {
  const declared = doc.layers ?? {};
  const problems: LayerProblem[] = [];
  const report = (path: string, message: string) => problems.push({ path, message });
  seedProblems(doc, report);
  // The layer's experiments in document order.
  const members = new Map<string, string[]>();
  for (const [id, experiment] of Object.entries(doc.experiments)) {
    const layer = experiment.layer;
    if (!layer) continue;
    if (!Object.hasOwn(declared, layer.id)) {
      report(`experiments.${id}.layer.id`, `unknown layer "${layer.id}"`);
      continue;
    }
    const list = members.get(layer.id) ?? [];
    list.push(id);
    members.set(layer.id, list);
  }
  const layers: Record<string, CompiledLayer> = {};
  for (const [id, layer] of Object.entries(declared))
    layers[id] = { id, seed: layer.seed, ranges: rangesOf(doc, id, members.get(id) ?? [], report) };
  return { layers, problems };
}

/**
 * The experiments' ranges in one layer. A share over the whole layer, a range past its end or two
 * ranges that overlap would put a visitor in two experiments of the layer, or count a range twice.
 */
function rangesOf(
  doc: RulesDocument,
  layerId: string,
  experimentIds: readonly string[],
  report: (path: string, message: string) => void,
): CompiledLayer["ranges"] {
  const at = (id: string) => `experiments.${id}.layer`;
  let claimed = 0;
  let claimedBuckets = 0;
  let unshared = 0;
  for (const id of experimentIds) {
    const share = doc.experiments[id]!.layer!.share;
    if (share === undefined) unshared++;
    else {
      claimed += share;
      claimedBuckets += toBuckets(share);
      // Compared unrounded, with a tolerance for shares written as decimals (0.1 + 0.2).
      if (claimed > 1 + 1e-9) {
        report(
          `${at(id)}.share`,
          `layer ${layerId}'s shares add up to ${Number(claimed.toFixed(6))} here: more than all of its visitors (at most 1)`,
        );
        return [];
      }
    }
  }
  // Experiments without a share split what the others leave; a bucket left over by the division
  // stays unallocated rather than making one part larger.
  const equalPart = unshared > 0 ? Math.floor((LAYER_BUCKETS - claimedBuckets) / unshared) : 0;
  const ranges: Array<{ experiment: string; from: number; to: number }> = [];
  let cursor = 0;
  for (const id of experimentIds) {
    const { share, from } = doc.experiments[id]!.layer!;
    const size = share === undefined ? equalPart : toBuckets(share);
    if (size <= 0) {
      report(
        at(id),
        share === undefined
          ? `layer ${layerId} has no visitors left for this experiment: the others' shares take them all`
          : `a share of ${share} is less than one of the layer's ${LAYER_BUCKETS} buckets (0.0001)`,
      );
      continue;
    }
    const start = from === undefined ? cursor : toBuckets(from);
    const end = start + size;
    cursor = end;
    if (end > LAYER_BUCKETS) {
      report(
        at(id),
        `its part of layer ${layerId}, from ${asFraction(start)} to ${asFraction(end)}, reaches past the end of the layer (1)`,
      );
      continue;
    }
    const overlapped = ranges.find((other) => start < other.to && other.from < end);
    if (overlapped) {
      report(
        at(id),
        `its part of layer ${layerId}, from ${asFraction(start)} to ${asFraction(end)}, overlaps ${overlapped.experiment}'s (${asFraction(overlapped.from)} to ${asFraction(overlapped.to)}): a visitor would be in both`,
      );
      continue;
    }
    ranges.push({ experiment: id, from: start, to: end });
  }
  return ranges;
}

/** A range as the fractions an author writes: "0.5–1". */
const span = (range: { readonly from: number; readonly to: number }): string =>
  `${asFraction(range.from)}–${asFraction(range.to)}`;

/**
 * What a new version does to the visitors of layers both versions have: a new seed reshuffles the
 * whole layer; an experiment whose range moved gains or loses visitors (and can lose the ones it
 * had). For `rules diff`, so a reviewer sees it before it is published.
 */
export function layerMoves(before: RulesDocument, after: RulesDocument): string[] {
  const old = layerLayout(before).layers;
  const moves: string[] = [];
  for (const [id, layer] of Object.entries(layerLayout(after).layers)) {
    const was = old[id];
    if (!was) continue;
    if (was.seed !== layer.seed) {
      moves.push(`! layers.${id}: a new seed reshuffles every visitor of the layer`);
      continue;
    }
    for (const range of layer.ranges) {
      const previous = was.ranges.find((other) => other.experiment === range.experiment);
      if (previous && (previous.from !== range.from || previous.to !== range.to))
        moves.push(
          `! experiments.${range.experiment}: its part of layer ${id} moves from ${span(previous)} to ${span(range)}, so visitors move in or out of it`,
        );
    }
  }
  return moves;
}

/**
 * A layer drawing with another layer's seed would split visitors exactly as that one does; with an
 * experiment's seed, its draw would decide that experiment's variants too (a layer giving an
 * experiment the lower half of its draw would show that experiment's first variant to all of them).
 */
function seedProblems(doc: RulesDocument, report: (path: string, message: string) => void): void {
  const users = new Map<string, string>();
  for (const [id, experiment] of Object.entries(doc.experiments))
    if (!users.has(experiment.seed)) users.set(experiment.seed, `experiment ${id}`);
  const global = doc.settings.globalHoldout;
  if (global && !users.has(global.seed)) users.set(global.seed, `settings.globalHoldout (${GLOBAL_HOLDOUT})`);
  for (const [id, layer] of Object.entries(doc.layers ?? {})) {
    const user = users.get(layer.seed);
    if (user)
      report(`layers.${id}.seed`, `${user} already draws with this seed: give the layer a seed of its own`);
    else users.set(layer.seed, `layer ${id}`);
  }
}
