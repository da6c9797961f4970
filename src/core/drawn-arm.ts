import { pickVariant } from "./bucketing.ts";
import type { CompiledExperiment } from "./compiled-rules.ts";
import { experimentAt, layerBucket } from "./layers.ts";

/**
 * The arm decide() assigns a visitor who has nothing stored: a pure function of the visitor id and
 * the experiment's seeds (docs/bucketing.md), so anyone can recompute it and nobody can choose it.
 * A claim that a first page assigned an arm (the beacon's first call, docs/decisions.md record 12)
 * is checked against it. The global holdout is compiled as an experiment with one arm
 * ("personalized") and a holdout, so it draws the same way. Null when decide() would assign
 * nothing: the experiment is not running, or its layer gives the visitor to another experiment or
 * to none.
 */
export function drawnArm(experiment: CompiledExperiment, visitorId: string): string | null {
  if (experiment.status !== "running") return null;
  const layer = experiment.layer;
  if (layer && experimentAt(layer, layerBucket(layer.seed, visitorId)) !== experiment.id) return null;
  const pick = pickVariant(experiment.seed, visitorId, experiment.variants, experiment.holdout);
  return pick.heldOut ? "holdout" : (pick.variant ?? "holdout");
}
