import { addMoments, EMPTY_MOMENTS, type ValueMoments } from "./value-stats.ts";

/**
 * An experiment's counters as its shards keep them, and the sums the results are computed from.
 * Every row is a counter (no visitor in it), so shards merge by adding rows with the same key:
 * - cohorts: visitors first exposed per arm and UTC day;
 * - goals: of those, per goal, how many converted and the sums of the powers of their value;
 * - conversionDays: conversions per arm, goal and UTC day of the conversion (for "over time").
 * Days are whole days since 1970-01-01 UTC.
 */

export interface CohortRow {
  readonly variant: string;
  readonly day: number;
  readonly visitors: number;
}

export interface GoalCohortRow {
  readonly variant: string;
  readonly day: number;
  readonly goal: string;
  readonly conversions: number;
  readonly sum: number;
  readonly sumSquares: number;
  readonly sumCubes: number;
}

export interface ConversionDayRow {
  readonly variant: string;
  readonly day: number;
  readonly goal: string;
  readonly conversions: number;
}

export interface ShardTally {
  readonly cohorts: readonly CohortRow[];
  readonly goals: readonly GoalCohortRow[];
  readonly conversionDays: readonly ConversionDayRow[];
}

export const EMPTY_TALLY: ShardTally = { cohorts: [], goals: [], conversionDays: [] };

const DAY_MS = 86_400_000;

/** Rows with the same key added up. */
function sumRows<T extends object>(rows: readonly T[], key: (row: T) => string, add: (a: T, b: T) => T): T[] {
  const byKey = new Map<string, T>();
  for (const row of rows) {
    const k = key(row);
    const seen = byKey.get(k);
    byKey.set(k, seen ? add(seen, row) : row);
  }
  return [...byKey.values()];
}

/** Every shard's counters as one. */
export function mergeTallies(tallies: readonly ShardTally[]): ShardTally {
  return {
    cohorts: sumRows(
      tallies.flatMap((t) => t.cohorts),
      (r) => `${r.variant}\u0000${r.day}`,
      (a, b) => ({ ...a, visitors: a.visitors + b.visitors }),
    ),
    goals: sumRows(
      tallies.flatMap((t) => t.goals),
      (r) => `${r.variant}\u0000${r.day}\u0000${r.goal}`,
      (a, b) => ({
        ...a,
        conversions: a.conversions + b.conversions,
        sum: a.sum + b.sum,
        sumSquares: a.sumSquares + b.sumSquares,
        sumCubes: a.sumCubes + b.sumCubes,
      }),
    ),
    conversionDays: sumRows(
      tallies.flatMap((t) => t.conversionDays),
      (r) => `${r.variant}\u0000${r.day}\u0000${r.goal}`,
      (a, b) => ({ ...a, conversions: a.conversions + b.conversions }),
    ),
  };
}

/** "2026-11-29" for a day number. */
export function dayLabel(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

/**
 * The ISO 8601 week of a day ("2026-W48"): weeks start on Monday, and week 1 is the one with the
 * year's first Thursday, so 2027-01-01 (a Friday) is in 2026-W53.
 */
export function isoWeek(day: number): string {
  const date = new Date(day * DAY_MS);
  const weekday = (date.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date((day - weekday + 3) * DAY_MS);
  const year = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * DAY_MS)) + 1;
  return `${year}-W${String(week).padStart(2, "0")}`;
}

/** One arm's counts on one goal. */
export interface ArmGoalCounts {
  readonly visitors: number;
  readonly conversions: number;
  /** Per-visitor value over all `visitors` (who did not convert add 0 to every sum). */
  readonly value: ValueMoments;
}

/** Each arm's visitors and conversions on a goal. */
export function armCounts(tally: ShardTally, goal: string): Map<string, ArmGoalCounts> {
  const arms = new Map<string, { visitors: number; conversions: number; value: ValueMoments }>();
  const arm = (variant: string) => {
    let counts = arms.get(variant);
    if (!counts) {
      counts = { visitors: 0, conversions: 0, value: EMPTY_MOMENTS };
      arms.set(variant, counts);
    }
    return counts;
  };
  for (const row of tally.cohorts) arm(row.variant).visitors += row.visitors;
  for (const row of tally.goals) {
    if (row.goal !== goal) continue;
    const counts = arm(row.variant);
    counts.conversions += row.conversions;
    counts.value = addMoments(counts.value, {
      n: 0,
      sum: row.sum,
      sumSquares: row.sumSquares,
      sumCubes: row.sumCubes,
    });
  }
  for (const counts of arms.values()) counts.value = { ...counts.value, n: counts.visitors };
  return arms;
}

/** The counters split by the ISO week visitors were first exposed in, weeks in order. */
export function cohortsByWeek(tally: ShardTally): Array<{ week: string; tally: ShardTally }> {
  const weekOf = new Map<number, string>();
  const week = (day: number) => {
    let w = weekOf.get(day);
    if (w === undefined) {
      w = isoWeek(day);
      weekOf.set(day, w);
    }
    return w;
  };
  const weeks = new Map<
    string,
    { cohorts: CohortRow[]; goals: GoalCohortRow[]; conversionDays: ConversionDayRow[] }
  >();
  const of = (day: number) => {
    const w = week(day);
    let part = weeks.get(w);
    if (!part) {
      part = { cohorts: [], goals: [], conversionDays: [] };
      weeks.set(w, part);
    }
    return part;
  };
  for (const row of tally.cohorts) of(row.day).cohorts.push(row);
  for (const row of tally.goals) of(row.day).goals.push(row);
  return [...weeks]
    .filter(([, part]) => part.cohorts.length > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([w, part]) => ({ week: w, tally: part }));
}

/** One day of one arm: visitors first exposed that day, and conversions per goal made that day. */
export interface DailyPoint {
  readonly date: string;
  readonly variant: string;
  readonly visitors: number;
  readonly conversions: Readonly<Record<string, number>>;
}

/** Visitors and conversions per arm and UTC day, for "visitors over time"; days in order. */
export function dailySeries(tally: ShardTally): DailyPoint[] {
  const points = new Map<
    string,
    { day: number; variant: string; visitors: number; conversions: Record<string, number> }
  >();
  const point = (day: number, variant: string) => {
    const key = `${day}\u0000${variant}`;
    let p = points.get(key);
    if (!p) {
      p = { day, variant, visitors: 0, conversions: {} };
      points.set(key, p);
    }
    return p;
  };
  for (const row of tally.cohorts) point(row.day, row.variant).visitors += row.visitors;
  for (const row of tally.conversionDays) {
    const p = point(row.day, row.variant);
    p.conversions[row.goal] = (p.conversions[row.goal] ?? 0) + row.conversions;
  }
  return [...points.values()]
    .sort((a, b) => a.day - b.day || (a.variant < b.variant ? -1 : a.variant > b.variant ? 1 : 0))
    .map((p) => ({
      date: dayLabel(p.day),
      variant: p.variant,
      visitors: p.visitors,
      conversions: p.conversions,
    }));
}
