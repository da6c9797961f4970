import * as z from "zod";
import type { CompiledExperiment } from "../core/compiled-rules.ts";
import {
  armCounts,
  cohortsByWeek,
  dailySeries,
  mergeTallies,
  type ShardTally,
} from "../core/experiment-tally.ts";
import { analyzeGoal, type GoalArmInput, type GoalReport } from "../core/goal-stats.ts";
import { analyzeExperiment, type ExperimentReport } from "../core/stats.ts";
import { EMPTY_MOMENTS } from "../core/value-stats.ts";
import { experimentShard, SHARDS } from "../measure/experiment-object.ts";
import { readConfig } from "../platform/config.ts";
import { deadlineIn } from "../platform/deadline.ts";
import { GLOBAL_HOLDOUT } from "../rules/index.ts";
import { activeRules } from "../state/rules-loader.ts";
import type { AppContext } from "./app-env.ts";
import { jsonError } from "./errors.ts";
import { storeDeadlineMs, storeRead, storeUnavailable } from "./store-calls.ts";

/**
 * GET /v1/experiments/:id: an experiment's results, read from every shard's counters under one
 * deadline. Per goal, per arm (its variants, its holdout; for `global-holdout`, the held-out
 * visitors against everyone personalized): visitors, conversions, rate with its Wilson interval,
 * value per visitor with its t interval, uplift against the control (Newcombe for the rate, Welch
 * and the delta method for the value), the sample-ratio check against the planned shares; the
 * same per ISO week of first exposure (for the global holdout: the programme's lift per week); and
 * a daily series for "visitors over time". The fields that came first (`goal`, `holdout`,
 * `report`: the primary goal over the variants) keep their meaning.
 */

const interval = z.tuple([z.number(), z.number()]);

const UpliftSchema = z.strictObject({
  absolute: z.number(),
  absoluteInterval: interval,
  relative: z.number().nullable(),
  relativeInterval: interval.nullable(),
  zScore: z.number(),
  pValue: z.number(),
  significant: z.boolean(),
});

const VerdictSchema = z.enum(["control", "better", "worse", "no significant difference", "not enough data"]);

const SampleRatioSchema = z.strictObject({
  chiSquare: z.number(),
  degreesOfFreedom: z.number().int(),
  pValue: z.number(),
  flagged: z.boolean(),
});

const armFields = {
  id: z.string(),
  isControl: z.boolean(),
  weight: z.number(),
  exposures: z.number().int(),
  conversions: z.number().int(),
  rate: z.number(),
  interval,
  observedShare: z.number(),
  expectedShare: z.number(),
  uplift: UpliftSchema.nullable(),
  verdict: VerdictSchema,
};

/** Typed against core's ExperimentReport, so the two cannot disagree without a type error. */
export const ExperimentReportSchema: z.ZodType<ExperimentReport> = z.strictObject({
  arms: z.array(z.strictObject(armFields)),
  control: z.string().nullable(),
  sampleRatioMismatch: SampleRatioSchema,
  enoughData: z.boolean(),
  note: z.string(),
});

/** Typed against core's GoalReport. */
export const GoalReportSchema: z.ZodType<GoalReport> = z.strictObject({
  arms: z.array(
    z.strictObject({
      ...armFields,
      isHoldout: z.boolean(),
      visitors: z.number().int().describe("unique visitors exposed (the same as exposures)"),
      value: z
        .strictObject({
          mean: z.number().describe("value per visitor: every exposed visitor, 0 for who did not convert"),
          interval: interval.nullable().describe("95% t interval of the mean; null below two visitors"),
          skewness: z.number(),
          normalApproximationOk: z
            .boolean()
            .describe("Cochran's rule n > 25·skewness²: enough visitors for the interval at this skew"),
          total: z.number(),
        })
        .describe("value per visitor (revenue); 0 when the goal has no value"),
      valueUplift: z
        .strictObject({
          absolute: z.number(),
          absoluteInterval: interval.describe("Welch's 95% interval of the difference of means"),
          degreesOfFreedom: z.number().nullable(),
          tScore: z.number(),
          pValue: z.number(),
          relative: z.number().nullable(),
          relativeInterval: interval.nullable().describe("delta method on the log ratio of means"),
          significant: z.boolean(),
        })
        .nullable(),
    }),
  ),
  control: z.string().nullable(),
  sampleRatioMismatch: SampleRatioSchema,
  enoughData: z.boolean(),
  note: z.string(),
});

const GoalResultSchema = z.strictObject({
  id: z.string(),
  event: z.string(),
  value: z.string().nullable().describe("the props path its value is read from; null: no value"),
  windowMs: z.number().nullable().describe("counted this long after first exposure; null: no window"),
  primary: z.boolean(),
  report: GoalReportSchema,
});

export const ExperimentResultsSchema = z.strictObject({
  experiment: z.string(),
  goal: z.string().describe("the primary goal's id"),
  rulesVersion: z.string().nullable(),
  holdout: z.strictObject({ exposures: z.number().int(), conversions: z.number().int() }).nullable(),
  report: ExperimentReportSchema.describe("the primary goal over the variants (the holdout is in `goals`)"),
  goals: z
    .array(GoalResultSchema)
    .describe("every goal, the primary first, over the variants and the holdout"),
  weekly: z
    .array(
      z.strictObject({
        week: z.string().describe('ISO 8601 week of first exposure, e.g. "2026-W48"'),
        goals: z.array(z.strictObject({ id: z.string(), report: GoalReportSchema })),
      }),
    )
    .describe(
      "the same per cohort of visitors first exposed in each ISO week; for global-holdout, the programme's lift per week",
    ),
  daily: z
    .array(
      z.strictObject({
        date: z.string().describe("UTC day"),
        variant: z.string(),
        visitors: z.number().int().describe("visitors first exposed that day"),
        conversions: z
          .record(z.string(), z.number().int())
          .describe("per goal, visitors who first reached it that day"),
      }),
    )
    .describe("visitors and conversions per arm and day"),
  shards: z
    .strictObject({
      total: z.number().int(),
      answered: z.number().int(),
      missing: z
        .array(z.number().int())
        .describe("shards that did not answer in time: their visitors are not counted"),
    })
    .describe("the experiment's counters are kept in shards; all of them are read under one deadline"),
});
export type ExperimentResults = z.infer<typeof ExperimentResultsSchema>;

type ArmPlan = Pick<GoalArmInput, "id" | "weight" | "isControl" | "isHoldout">;

/** The arms and their planned shares: the variants (the first is the control) and the holdout. */
function armPlan(experiment: CompiledExperiment): ArmPlan[] {
  const holdout = experiment.holdout;
  if (experiment.id === GLOBAL_HOLDOUT)
    return [
      { id: "holdout", weight: holdout, isControl: true, isHoldout: true },
      { id: "personalized", weight: 1 - holdout },
    ];
  const total = experiment.variants.reduce((sum, v) => sum + v.weight, 0);
  const variants = experiment.variants.map(
    (v, i): ArmPlan => ({
      id: v.id,
      weight: total > 0 ? (v.weight / total) * (1 - holdout) : 0,
      ...(i === 0 ? { isControl: true } : {}),
    }),
  );
  return holdout > 0 ? [...variants, { id: "holdout", weight: holdout, isHoldout: true }] : variants;
}

function goalReport(plan: readonly ArmPlan[], tally: ShardTally, goal: string): GoalReport {
  const counts = armCounts(tally, goal);
  return analyzeGoal(
    plan.map((arm) => {
      const c = counts.get(arm.id);
      return {
        ...arm,
        visitors: c?.visitors ?? 0,
        conversions: c?.conversions ?? 0,
        value: c?.value ?? EMPTY_MOMENTS,
      };
    }),
  );
}

/** Every shard's counters under one deadline; which shards did not answer. */
async function readShards(
  c: AppContext,
  experiment: string,
  primaryGoal: string,
): Promise<{ tally: ShardTally; missing: number[]; failure: "timeout" | "error" | null }> {
  const deadline = deadlineIn(storeDeadlineMs(c.env, "write"));
  const reads = await Promise.all(
    Array.from({ length: SHARDS }, (_, shard) =>
      storeRead(c, "do", () => experimentShard(c.env, experiment, shard).tally(primaryGoal), deadline),
    ),
  );
  deadline.cancel();
  const tallies: ShardTally[] = [];
  const missing: number[] = [];
  let failure: "timeout" | "error" | null = null;
  reads.forEach((read, shard) => {
    if (read.ok) tallies.push(read.value);
    else {
      missing.push(shard);
      failure = read.failure.endsWith("timeout") ? "timeout" : "error";
    }
  });
  return { tally: mergeTallies(tallies), missing, failure };
}

export async function experimentResults(c: AppContext): Promise<Response> {
  // Always present: the route is registered as /v1/experiments/:id.
  const id = c.req.param("id") ?? "";
  const loaded = await activeRules(c.env, c.executionCtx);
  // An own property only: "constructor" or "valueOf" is every object's, never an experiment.
  const experiments = loaded?.compiled.experiments;
  const experiment = experiments && Object.hasOwn(experiments, id) ? experiments[id] : undefined;
  if (!experiment) return jsonError("unknown_experiment", `no experiment "${id}" in the active rules`);
  const { tally, missing, failure } = await readShards(c, id, experiment.goal);
  // No shard answered: nothing could be read, and a report of zeros would mislead.
  if (missing.length === SHARDS) return storeUnavailable(failure ?? "error", "read");
  const plan = armPlan(experiment);
  const primary = armCounts(tally, experiment.goal);
  // `report` as it always was: the primary goal over the variants (the global holdout's two groups).
  const variantArms = plan
    .filter((arm) => !arm.isHoldout || id === GLOBAL_HOLDOUT)
    .map((arm) => ({
      id: arm.id,
      weight:
        id === GLOBAL_HOLDOUT ? arm.weight : (experiment.variants.find((v) => v.id === arm.id)?.weight ?? 0),
      exposures: primary.get(arm.id)?.visitors ?? 0,
      conversions: primary.get(arm.id)?.conversions ?? 0,
      isControl: arm.isControl === true,
    }));
  const holdout = primary.get("holdout");
  const body: ExperimentResults = {
    experiment: id,
    goal: experiment.goal,
    rulesVersion: loaded?.version ?? null,
    holdout: holdout ? { exposures: holdout.visitors, conversions: holdout.conversions } : null,
    report: analyzeExperiment(variantArms),
    goals: experiment.goals.map((goal, i) => ({
      id: goal.id,
      event: goal.event,
      value: goal.valuePath ? `props.${goal.valuePath.join(".")}` : null,
      windowMs: Number.isFinite(goal.windowMs) ? goal.windowMs : null,
      primary: i === 0,
      report: goalReport(plan, tally, goal.id),
    })),
    weekly: cohortsByWeek(tally).map(({ week, tally: cohort }) => ({
      week,
      goals: experiment.goals.map((goal) => ({ id: goal.id, report: goalReport(plan, cohort, goal.id) })),
    })),
    daily: dailySeries(tally),
    shards: { total: SHARDS, answered: SHARDS - missing.length, missing },
  };
  const res = c.json(body);
  const { config } = readConfig(c.env);
  if (missing.length && config.DEBUG_HEADERS)
    res.headers.set(config.FAIL_OPEN_HEADER, `do-${failure ?? "error"}`);
  return res;
}
