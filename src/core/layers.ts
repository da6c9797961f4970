import { bucket } from "./bucketing.ts";
import type { CompiledExperiment, CompiledLayer } from "./compiled-rules.ts";

/**
 * Experiment layers (docs/bucketing.md, "Layers"): the experiments of a layer share its visitors, so
 * a visitor is in at most one of them, on every page and channel, with no storage:
 *
 *   layerBucket(seed, id) = floor(bucket(seed, id) × 10,000)        → 0 … 9,999
 *   experiment            = the one whose range [from, to) holds it, or none
 *
 * Each experiment owns a fixed range of the layer's buckets, so adding an experiment in the free
 * part of a layer, or ending one, moves nobody in the others. Layers draw with their own seeds, so
 * a visitor's place in one layer says nothing about their place in another.
 */

/** How many buckets a layer is cut into: a share is a whole number of them (0.01% each). */
export const LAYER_BUCKETS = 10_000;

/**
 * The visitor's bucket in a layer, 0 … 9,999. Exact in any IEEE-754 language: `bucket` is a 32-bit
 * integer over 2^32, and that times 10,000 needs 46 bits; equivalently `(hash × 10000) >> 32`.
 *
 * @example layerBucket("home-layer-2026", "visitor-1") // an integer in [0, 10000)
 */
export function layerBucket(seed: string, visitorId: string): number {
  return Math.floor(bucket(seed, visitorId) * LAYER_BUCKETS);
}

/** The experiment of the layer whose range holds `slot`, or null for the layer's unallocated part. */
export function experimentAt(layer: CompiledLayer, slot: number): string | null {
  for (const range of layer.ranges) if (slot >= range.from && slot < range.to) return range.experiment;
  return null;
}

/**
 * One visitor's place in each layer, drawn at most once per decision however many of the layer's
 * experiences are candidates.
 */
export class LayerDraws {
  private drawn: Map<string, string | null> | null = null;
  private readonly visitorId: string;

  constructor(visitorId: string) {
    this.visitorId = visitorId;
  }

  /** The experiment of `layer` the visitor is in, or null when the layer gives them to none. */
  experimentIn(layer: CompiledLayer): string | null {
    this.drawn ??= new Map();
    let experiment = this.drawn.get(layer.id);
    if (experiment === undefined) {
      experiment = experimentAt(layer, layerBucket(layer.seed, this.visitorId));
      this.drawn.set(layer.id, experiment);
    }
    return experiment;
  }

  /**
   * Whether the layer lets the visitor into `experiment`. Only a running experiment shares its
   * layer: a paused or stopped one shows its first variant to everyone, measuring nobody.
   */
  admits(experiment: CompiledExperiment): boolean {
    const layer = experiment.layer;
    return layer === null || experiment.status !== "running" || this.experimentIn(layer) === experiment.id;
  }
}

/** The explanation of a candidate the layer kept out: which experiment it gave the visitor to. */
export function layerLossDetail(layer: CompiledLayer, owner: string | null): string {
  return owner === null
    ? `not in this experiment: layer ${layer.id} gave the visitor to no experiment (its unallocated share)`
    : `not in this experiment: layer ${layer.id} gave the visitor to ${owner}`;
}

/** The explanation of a winner in a layer. */
export function layerWinDetail(experiment: CompiledExperiment): string | null {
  return experiment.layer && experiment.status === "running"
    ? `in layer ${experiment.layer.id}, assigned to experiment ${experiment.id}`
    : null;
}
