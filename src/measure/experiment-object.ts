import * as z from "zod";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";

/**
 * An experiment's object as its callers see it: the RPC contract of `ExperimentDO`
 * (src/measure/experiment-do.ts). A leaf: routes and the edge import this, never the class.
 */

/** One arm's unique visitors: exposed, and converted after their exposure. */
export interface ArmCounts {
  readonly variant: string;
  readonly exposures: number;
  readonly conversions: number;
}

/** One visitor's row, as the admin export shows it. */
export const ExposureRowSchema = z
  .object({
    visitorId: z.string(),
    variant: z.string(),
    exposedAt: z.number(),
    convertedAt: z.number().nullable(),
  })
  .readonly();
export type ExposureRow = z.infer<typeof ExposureRowSchema>;

export interface ExperimentObject {
  /** Records exposures; a visitor already exposed keeps their first variant. Answers how many were new. */
  expose(items: ReadonlyArray<{ visitorId: string; variant: string; at: number }>): Promise<number>;
  /** A conversion counts once per visitor, and only after that visitor was exposed. */
  convert(visitorId: string, at: number): Promise<boolean>;
  counts(): Promise<ArmCounts[]>;
  /** Stitching: the rows recorded under `from` become `to`'s. */
  rekey(from: string, to: string): Promise<boolean>;
  /** A person's rows (their canonical id and aliases), for the admin export. */
  rows(visitorIds: readonly string[]): Promise<ExposureRow[]>;
  /** Erasure of one person, under every id they were recorded by. */
  forget(visitorIds: readonly string[]): Promise<void>;
}

/** The experiment's object (one per experiment id), as visitorObject is the visitor's. */
export function experimentObject(env: Pick<Env, "EXPERIMENTS">, experiment: string): ExperimentObject {
  // The stub has exactly these methods (ExperimentDO's public surface, checked by `implements`).
  return env.EXPERIMENTS.get(env.EXPERIMENTS.idFromName(experiment)) as unknown as ExperimentObject;
}

/**
 * Counts the goals a batch of events reached in their experiments (the visitor's object lists them
 * only for a person the privacy gate lets be measured), whichever route the events came by. Off
 * the response's path: a failure is logged and counted, never thrown.
 */
export async function countConversions(
  env: Pick<Env, "EXPERIMENTS">,
  visitorId: string,
  conversions: ReadonlyArray<{ readonly experiment: string; readonly at: number }>,
): Promise<void> {
  try {
    await Promise.all(
      conversions.map((conversion) =>
        experimentObject(env, conversion.experiment).convert(visitorId, conversion.at),
      ),
    );
  } catch (err) {
    log("warn", "conversion_not_recorded", { count: conversions.length, error: String(err) });
  }
}
