import * as z from "zod";
import { bucket } from "../core/bucketing.ts";
import type { ShardTally } from "../core/experiment-tally.ts";
import type { GoalEvent } from "../core/goals.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { GLOBAL_HOLDOUT } from "../rules/index.ts";

/**
 * An experiment's objects as their callers see them: the RPC contract of `ExperimentDO`
 * (src/measure/experiment-do.ts), and which of them holds a visitor. A leaf: routes and the edge
 * import this, never the class.
 *
 * An experiment is counted in SHARDS objects, each owning the visitors whose id hashes to it: one
 * experiment on every page of a busy site is then never one hot object (a Durable Object serves
 * about a thousand small writes a second; sixteen serve sixteen times that). A visitor's exposure,
 * conversions and once-per-visitor dedupe all live in the shard that owns them, so counting stays
 * exact; a result is the sum of every shard's counters (docs/decisions.md, record 14).
 */

/** Shards per experiment. Fixed: changing it would move visitors away from their rows. */
export const SHARDS = 16;

/** Which shard owns a visitor: the same for every experiment, uniform over the shards. */
export function shardOf(visitorId: string): number {
  return Math.floor(bucket("experiment-shard", visitorId) * SHARDS);
}

/**
 * Shard 0 has the experiment's own name: it is the one object an experiment was counted in before
 * sharding, and moves the rows it holds of other shards' visitors to them (ExperimentDO.alarm).
 * Experiment ids never contain "#" (the rules' id pattern), so no shard name is an experiment's.
 */
export function shardName(experiment: string, shard: number): string {
  return shard === 0 ? experiment : `${experiment}#${shard}`;
}

/** One visitor's row, as the admin export shows it. */
export const ExposureRowSchema = z
  .object({
    visitorId: z.string(),
    variant: z.string(),
    exposedAt: z.number(),
    /** The first conversion of the experiment's goals (the primary's before goals were listed). */
    convertedAt: z.number().nullable(),
    goals: z.record(z.string(), z.object({ firstAt: z.number(), value: z.number() }).readonly()).optional(),
  })
  .readonly();
export type ExposureRow = z.infer<typeof ExposureRowSchema>;

/** A conversion as a shard records it: a goal event of one of its visitors. */
export interface GoalConversion {
  readonly goal: string;
  readonly at: number;
  readonly value: number;
  readonly windowMs: number;
}

/** A visitor's rows moving from one shard to another (stitching, or the move out of shard 0). */
export interface MovedVisitor {
  /** The id the rows were recorded under. */
  readonly visitorId: string;
  /** The id they are recorded under from now on (the person's, or the same id in its own shard). */
  readonly into: string;
  readonly variant: string;
  readonly exposedAt: number;
  /** The primary goal's conversion as written before goals were listed (goal unknown to the shard). */
  readonly legacyConvertedAt: number | null;
  readonly goals: ReadonlyArray<{ readonly goal: string; readonly firstAt: number; readonly value: number }>;
}

export interface ExperimentShard {
  /** Records exposures; a visitor already exposed keeps their first variant. Answers how many were new. */
  expose(items: ReadonlyArray<{ visitorId: string; variant: string; at: number }>): Promise<number>;
  /**
   * A visitor's goal events: each goal counts once per visitor, and only at or after their exposure
   * and within the goal's window; the values of every counted event are summed. Answers how many
   * events counted.
   */
  convert(visitorId: string, conversions: readonly GoalConversion[]): Promise<number>;
  /** The shard's counters; `primaryGoal` names the conversions written before goals were listed. */
  tally(primaryGoal: string): Promise<ShardTally>;
  /** Stitching within one shard: the rows recorded under `from` become `to`'s. */
  rekey(from: string, to: string): Promise<boolean>;
  /** A visitor's rows, to hand over to another shard (stitching across shards); nothing is removed. */
  rowsToMove(visitorId: string): Promise<MovedVisitor | null>;
  /**
   * Merges rows handed over: the earliest exposure wins, conversions are kept per goal (earliest
   * time, values added). Idempotent: rows already adopted from the same id are skipped.
   */
  adopt(rows: readonly MovedVisitor[]): Promise<void>;
  /** A person's rows (their canonical id and aliases), for the admin export. */
  rows(visitorIds: readonly string[]): Promise<ExposureRow[]>;
  /** Erasure of one person, under every id they were recorded by. */
  forget(visitorIds: readonly string[]): Promise<void>;
}

/** One shard of an experiment. */
export function experimentShard(
  env: Pick<Env, "EXPERIMENTS">,
  experiment: string,
  shard: number,
): ExperimentShard {
  // The stub has exactly these methods (ExperimentDO's public surface, checked by `implements`).
  return env.EXPERIMENTS.get(
    env.EXPERIMENTS.idFromName(shardName(experiment, shard)),
  ) as unknown as ExperimentShard;
}

/** The shard that owns a visitor's rows in an experiment. */
export function experimentObject(
  env: Pick<Env, "EXPERIMENTS">,
  experiment: string,
  visitorId: string,
): ExperimentShard {
  return experimentShard(env, experiment, shardOf(visitorId));
}

/**
 * The shards that may hold rows of these ids: each id's own, and shard 0 for all of them (it may
 * still hold rows from before sharding that its alarm has not moved yet).
 */
export function shardsHolding(visitorIds: readonly string[]): Map<number, string[]> {
  const byShard = new Map<number, string[]>([[0, [...visitorIds]]]);
  for (const id of visitorIds) {
    const shard = shardOf(id);
    if (shard === 0) continue;
    const ids = byShard.get(shard);
    if (ids) ids.push(id);
    else byShard.set(shard, [id]);
  }
  return byShard;
}

/** A person's rows in an experiment (their canonical id and aliases), for the admin export. */
export async function personRows(
  env: Pick<Env, "EXPERIMENTS">,
  experiment: string,
  visitorIds: readonly string[],
): Promise<ExposureRow[]> {
  const rows = await Promise.all(
    [...shardsHolding(visitorIds)].map(([shard, ids]) => experimentShard(env, experiment, shard).rows(ids)),
  );
  return rows.flat();
}

/** Erasure of one person from an experiment, under every id they were recorded by. */
export async function forgetPerson(
  env: Pick<Env, "EXPERIMENTS">,
  experiment: string,
  visitorIds: readonly string[],
): Promise<void> {
  await Promise.all(
    [...shardsHolding(visitorIds)].map(([shard, ids]) => experimentShard(env, experiment, shard).forget(ids)),
  );
}

/**
 * Stitching in one experiment: the rows recorded under `from` (an anonymous id) become `to`'s. In
 * one shard the shard does it in one transaction; across shards the target adopts the rows before
 * the source lets them go, so a failure in between leaves the rows in both, and a retry (adopt is
 * idempotent) finishes the move without counting anyone twice once it is done.
 */
export async function rekeyVisitor(
  env: Pick<Env, "EXPERIMENTS">,
  experiment: string,
  from: string,
  to: string,
): Promise<boolean> {
  if (from === to) return false;
  const source = experimentObject(env, experiment, from);
  if (shardOf(from) === shardOf(to)) return source.rekey(from, to);
  const moved = await source.rowsToMove(from);
  if (!moved) return false;
  await experimentObject(env, experiment, to).adopt([{ ...moved, into: to }]);
  await source.forget([from]);
  return true;
}

/**
 * Counts the goal events a batch reached in their experiments (the visitor's object lists them
 * only for a person the privacy gate lets be measured), whichever route the events came by. Off
 * the response's path: a failure is logged and counted, never thrown.
 */
export async function countConversions(
  env: Pick<Env, "EXPERIMENTS">,
  visitorId: string,
  events: readonly GoalEvent[],
): Promise<void> {
  const byExperiment = new Map<string, GoalConversion[]>();
  for (const event of events) {
    const list = byExperiment.get(event.experiment) ?? [];
    list.push({ goal: event.goal, at: event.at, value: event.value, windowMs: event.windowMs });
    byExperiment.set(event.experiment, list);
  }
  try {
    await Promise.all(
      [...byExperiment].map(([experiment, conversions]) =>
        experimentObject(env, experiment, visitorId).convert(visitorId, conversions),
      ),
    );
  } catch (err) {
    log("warn", "conversion_not_recorded", { count: events.length, error: String(err) });
  }
}

/**
 * A visitor counted in the experiments a decision assigned them to (one unique exposure per
 * experiment: a visitor already exposed keeps their first arm), once their object said they may be.
 * Whatever the channel: a page, a decide call, a journey's message. Rejects when a shard fails (the
 * caller logs it, or retries: counting again changes nothing).
 */
export async function countExposures(
  env: Pick<Env, "EXPERIMENTS">,
  visitorId: string,
  exposures: ReadonlyArray<{ readonly experiment?: string | null; readonly variant?: string | null }>,
  assignments: Readonly<Record<string, string>>,
  at: number,
): Promise<void> {
  const arms = new Map<string, string>();
  for (const exposure of exposures)
    if (exposure.experiment && exposure.variant) arms.set(exposure.experiment, exposure.variant);
  // Held-out visitors are counted in their experiment's holdout; every visitor assigned to the
  // global holdout's groups is counted there, in whichever group (that experiment has no exposure).
  for (const [experiment, variant] of Object.entries(assignments))
    if (variant === "holdout" || experiment === GLOBAL_HOLDOUT) arms.set(experiment, variant);
  await Promise.all(
    [...arms].map(([experiment, variant]) =>
      experimentObject(env, experiment, visitorId).expose([{ visitorId, variant, at }]),
    ),
  );
}
