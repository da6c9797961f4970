import { type ArmReport, analyzeExperiment, type ExperimentReport } from "./stats.ts";
import {
  compareMeans,
  type MeanComparison,
  type MeanEstimate,
  meanEstimate,
  type ValueMoments,
} from "./value-stats.ts";

/**
 * One goal's results across an experiment's arms: its conversion rate (analyzeExperiment: Wilson,
 * Newcombe, the z-test, the sample-ratio check against the planned shares) and its value per
 * visitor (value-stats.ts: t and Welch intervals, delta method for the relative uplift). The
 * holdout, when there is one, is an arm like the others: planned at its share, compared with the
 * control.
 */

export interface GoalArmInput {
  readonly id: string;
  /** Planned share of the experiment's traffic (any scale). */
  readonly weight: number;
  readonly isControl?: boolean;
  readonly isHoldout?: boolean;
  /** Unique visitors exposed. */
  readonly visitors: number;
  /** Unique exposed visitors who reached the goal within its window. */
  readonly conversions: number;
  /** Per-visitor value's sufficient statistics, over all `visitors` (0 for who did not convert). */
  readonly value: ValueMoments;
}

export interface GoalArmReport extends ArmReport {
  readonly isHoldout: boolean;
  /** The same number as `exposures`: unique visitors exposed. */
  readonly visitors: number;
  readonly value: MeanEstimate & { readonly total: number };
  /** Value per visitor against the control's; null for the control or below two visitors. */
  readonly valueUplift: MeanComparison | null;
}

export interface GoalReport extends Omit<ExperimentReport, "arms"> {
  readonly arms: readonly GoalArmReport[];
}

export function analyzeGoal(arms: readonly GoalArmInput[]): GoalReport {
  const rates = analyzeExperiment(
    arms.map((arm) => ({
      id: arm.id,
      weight: arm.weight,
      exposures: arm.visitors,
      conversions: arm.conversions,
      ...(arm.isControl ? { isControl: true } : {}),
    })),
  );
  const control = arms.find((arm) => arm.id === rates.control);
  return {
    ...rates,
    arms: rates.arms.map((report, i) => {
      const arm = arms[i]!;
      return {
        ...report,
        isHoldout: arm.isHoldout === true,
        visitors: report.exposures,
        value: { ...meanEstimate(arm.value), total: arm.value.sum },
        valueUplift: report.isControl || !control ? null : compareMeans(arm.value, control.value),
      };
    }),
  };
}
