import { DurableObject } from "cloudflare:workers";
import * as z from "zod";
import type { ShardTally } from "../core/experiment-tally.ts";
import type { Env } from "../platform/env.ts";
import { ensureKeyedTables, type KeyedTable } from "../platform/keyed-tables.ts";
import { log } from "../platform/log.ts";
import { parseStored, recordDroppedWrite } from "../state/stored-value.ts";
import {
  type ExperimentShard,
  type ExposureRow,
  experimentShard,
  type GoalConversion,
  type MovedVisitor,
  SHARDS,
  shardOf,
} from "./experiment-object.ts";

/**
 * One shard of an experiment: who of the visitors it owns was exposed to which variant, and who
 * reached which goal with what value. Counting unique visitors (not page views) is what makes the
 * statistics honest: a visitor who reloads ten times is one exposure. The first variant a visitor
 * was exposed to is theirs for the analysis (intent to treat). Callers use the contract in
 * experiment-object.ts.
 *
 * Tables (docs/storage.md):
 * - `exposure` (visitor, variant, at, converted_at): one row per visitor. `converted_at` is the
 *   primary goal's conversion as written before goals were listed; it is no longer written, and a
 *   tally folds what is left of it into `goal_conversion` under the primary goal it is given.
 * - `goal_conversion` (visitor, goal, first_at, value): one row per visitor and goal reached.
 * - `adopted` (source, into): rows already merged from another shard, so a retried hand-over never
 *   adds a value twice.
 * - `meta` (key, value): `homed`, set once shard 0 holds only its own visitors.
 */

const StoredExposureSchema = z.object({
  visitor: z.string(),
  variant: z.string(),
  at: z.number(),
  converted_at: z.number().nullable(),
});
type StoredExposure = z.infer<typeof StoredExposureSchema>;

const StoredGoalSchema = z.object({
  visitor: z.string(),
  goal: z.string(),
  first_at: z.number(),
  value: z.number(),
});

const CohortRowSchema = z.object({ variant: z.string(), day: z.number(), visitors: z.number() });
const GoalCohortRowSchema = z.object({
  variant: z.string(),
  day: z.number(),
  goal: z.string(),
  conversions: z.number(),
  sum: z.number(),
  sumSquares: z.number(),
  sumCubes: z.number(),
});
const ConversionDayRowSchema = z.object({
  variant: z.string(),
  day: z.number(),
  goal: z.string(),
  conversions: z.number(),
});

/** Durable Object SQL binds at most 100 parameters per statement; a person may have 1000 aliases. */
const IDS_PER_STATEMENT = 50;
/** Rows shard 0 moves to their own shards per alarm. */
const MOVE_BATCH = 500;

/**
 * A shard's tables, keyed WITHOUT ROWID so a visitor's first exposure (or goal, or adoption) is one
 * row written, not the row and its key's index (docs/decisions.md, record 28); a shard stored before
 * is rebuilt once when it starts.
 */
const SHARD_TABLES: readonly KeyedTable[] = [
  {
    name: "exposure",
    create: `CREATE TABLE IF NOT EXISTS exposure (visitor TEXT PRIMARY KEY, variant TEXT NOT NULL,
      at INTEGER NOT NULL, converted_at INTEGER) WITHOUT ROWID`,
    columns: ["visitor", "variant", "at", "converted_at"],
  },
  {
    name: "goal_conversion",
    create: `CREATE TABLE IF NOT EXISTS goal_conversion (visitor TEXT NOT NULL, goal TEXT NOT NULL,
      first_at INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (visitor, goal)) WITHOUT ROWID`,
    columns: ["visitor", "goal", "first_at", "value"],
  },
  {
    name: "adopted",
    create: `CREATE TABLE IF NOT EXISTS adopted (source TEXT NOT NULL, into_visitor TEXT NOT NULL,
      PRIMARY KEY (source, into_visitor)) WITHOUT ROWID`,
    columns: ["source", "into_visitor"],
  },
  {
    name: "meta",
    create: "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    columns: ["key", "value"],
  },
];

export class ExperimentDO extends DurableObject<Env> implements ExperimentShard {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ensureKeyedTables(this.sql, SHARD_TABLES);
    this.homeStrays();
  }

  // The methods are async for the contract's sake only: none awaits, so each runs whole.

  /** Records exposures; a visitor already exposed keeps their first variant. */
  async expose(items: ReadonlyArray<{ visitorId: string; variant: string; at: number }>): Promise<number> {
    let added = 0;
    for (const item of items) {
      const cursor = this.sql.exec(
        "INSERT INTO exposure (visitor, variant, at) VALUES (?, ?, ?) ON CONFLICT(visitor) DO NOTHING",
        item.visitorId,
        item.variant,
        item.at,
      );
      added += cursor.rowsWritten > 0 ? 1 : 0;
    }
    return added;
  }

  /**
   * A goal counts once per visitor (the row's key), at or after their exposure and within the
   * goal's window; every counted event's value is added to the visitor's.
   */
  async convert(visitorId: string, conversions: readonly GoalConversion[]): Promise<number> {
    let counted = 0;
    this.ctx.storage.transactionSync(() => {
      for (const conversion of conversions) {
        const window = Number.isFinite(conversion.windowMs) ? conversion.windowMs : null;
        const cursor = this.sql.exec(
          `INSERT INTO goal_conversion (visitor, goal, first_at, value)
             SELECT visitor, ?, ?, ? FROM exposure
             WHERE visitor = ? AND at <= ? AND (? IS NULL OR ? - at <= ?)
           ON CONFLICT(visitor, goal) DO UPDATE SET
             first_at = MIN(first_at, excluded.first_at), value = value + excluded.value`,
          conversion.goal,
          conversion.at,
          Number.isFinite(conversion.value) ? conversion.value : 0,
          visitorId,
          conversion.at,
          window,
          conversion.at,
          window,
        );
        counted += cursor.rowsWritten > 0 ? 1 : 0;
      }
    });
    return counted;
  }

  /** The shard's counters, with what is left of the old single-goal conversions as the primary goal's. */
  async tally(primaryGoal: string): Promise<ShardTally> {
    this.foldLegacyConversions(primaryGoal);
    // Days are whole UTC days since 1970 (integer division: `at` is stored as an INTEGER).
    const rows = <T>(schema: z.ZodType<T>, query: string, what: string): T[] => {
      const parsed: T[] = [];
      for (const raw of this.sql.exec(query)) {
        const row = parseStored(schema, raw, what);
        if (row) parsed.push(row);
      }
      return parsed;
    };
    return {
      cohorts: rows(
        CohortRowSchema,
        "SELECT variant, at / 86400000 AS day, COUNT(*) AS visitors FROM exposure GROUP BY variant, day",
        "exposure.cohorts",
      ),
      goals: rows(
        GoalCohortRowSchema,
        `SELECT e.variant AS variant, e.at / 86400000 AS day, c.goal AS goal, COUNT(*) AS conversions,
           TOTAL(c.value) AS sum, TOTAL(c.value * c.value) AS sumSquares,
           TOTAL(c.value * c.value * c.value) AS sumCubes
         FROM goal_conversion c JOIN exposure e ON e.visitor = c.visitor
         GROUP BY e.variant, day, c.goal`,
        "goal_conversion.cohorts",
      ),
      conversionDays: rows(
        ConversionDayRowSchema,
        `SELECT e.variant AS variant, c.first_at / 86400000 AS day, c.goal AS goal, COUNT(*) AS conversions
         FROM goal_conversion c JOIN exposure e ON e.visitor = c.visitor
         GROUP BY e.variant, day, c.goal`,
        "goal_conversion.days",
      ),
    };
  }

  /**
   * Conversions written before experiments listed goals (`exposure.converted_at`) were of the
   * experiment's one goal, which the reader names: they become that goal's rows, once.
   */
  private foldLegacyConversions(primaryGoal: string): void {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        `INSERT INTO goal_conversion (visitor, goal, first_at, value)
           SELECT visitor, ?, converted_at, 0 FROM exposure WHERE converted_at IS NOT NULL
         ON CONFLICT(visitor, goal) DO UPDATE SET first_at = MIN(first_at, excluded.first_at)`,
        primaryGoal,
      );
      this.sql.exec("UPDATE exposure SET converted_at = NULL WHERE converted_at IS NOT NULL");
    });
  }

  /**
   * Stitching within the shard: the rows recorded under `from` (an anonymous id) become `to`'s, so
   * a conversion sent under the person's id after login finds the exposure seen before it. A
   * person exposed under both ids counts once, in the arm they saw first (intent to treat).
   */
  async rekey(from: string, to: string): Promise<boolean> {
    if (from === to) return false;
    const moved = this.movedOf(from, to);
    if (!moved) return false;
    this.ctx.storage.transactionSync(() => {
      this.deleteVisitor(from);
      this.merge(moved);
    });
    return true;
  }

  async rowsToMove(visitorId: string): Promise<MovedVisitor | null> {
    return this.movedOf(visitorId, visitorId);
  }

  async adopt(rows: readonly MovedVisitor[]): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      for (const row of rows) {
        const done = this.sql.exec(
          "INSERT INTO adopted (source, into_visitor) VALUES (?, ?) ON CONFLICT DO NOTHING",
          row.visitorId,
          row.into,
        );
        if (done.rowsWritten > 0) this.merge(row);
      }
    });
  }

  /** A visitor's rows, to be recorded under `into`. */
  private movedOf(visitorId: string, into: string): MovedVisitor | null {
    const exposure = this.exposuresOf([visitorId])[0];
    if (!exposure) return null;
    const goals: Array<{ goal: string; firstAt: number; value: number }> = [];
    for (const raw of this.sql.exec(
      "SELECT visitor, goal, first_at, value FROM goal_conversion WHERE visitor = ?",
      visitorId,
    )) {
      const row = parseStored(StoredGoalSchema, raw, "goal_conversion");
      if (row) goals.push({ goal: row.goal, firstAt: row.first_at, value: row.value });
    }
    return {
      visitorId,
      into,
      variant: exposure.variant,
      exposedAt: exposure.at,
      legacyConvertedAt: exposure.converted_at,
      goals,
    };
  }

  /**
   * Rows merged under `row.into`: the earlier exposure's arm wins; a goal keeps its earliest time
   * not before that exposure, and the values of both add up.
   */
  private merge(row: MovedVisitor): void {
    const target = this.exposuresOf([row.into])[0];
    const first =
      target && target.at <= row.exposedAt
        ? { variant: target.variant, at: target.at }
        : { variant: row.variant, at: row.exposedAt };
    const legacy = [row.legacyConvertedAt, target?.converted_at ?? null].filter(
      (at): at is number => at !== null && at >= first.at,
    );
    this.sql.exec(
      `INSERT INTO exposure (visitor, variant, at, converted_at) VALUES (?, ?, ?, ?)
       ON CONFLICT(visitor) DO UPDATE SET variant = excluded.variant, at = excluded.at,
         converted_at = excluded.converted_at`,
      row.into,
      first.variant,
      first.at,
      legacy.length ? Math.min(...legacy) : null,
    );
    for (const goal of row.goals) {
      if (goal.firstAt < first.at) continue;
      this.sql.exec(
        `INSERT INTO goal_conversion (visitor, goal, first_at, value) VALUES (?, ?, ?, ?)
         ON CONFLICT(visitor, goal) DO UPDATE SET
           first_at = MIN(first_at, excluded.first_at), value = value + excluded.value`,
        row.into,
        goal.goal,
        goal.firstAt,
        goal.value,
      );
    }
    // The earlier exposure may now be the adopted one: a conversion before it no longer counts.
    this.sql.exec("DELETE FROM goal_conversion WHERE visitor = ? AND first_at < ?", row.into, first.at);
  }

  private deleteVisitor(visitorId: string): void {
    this.sql.exec("DELETE FROM exposure WHERE visitor = ?", visitorId);
    this.sql.exec("DELETE FROM goal_conversion WHERE visitor = ?", visitorId);
  }

  /** A person's rows (their canonical id and aliases), for the admin export. */
  async rows(visitorIds: readonly string[]): Promise<ExposureRow[]> {
    return this.exposuresOf(visitorIds).map((row) => {
      const moved = this.movedOf(row.visitor, row.visitor);
      const goals = Object.fromEntries(
        (moved?.goals ?? []).map((g) => [g.goal, { firstAt: g.firstAt, value: g.value }]),
      );
      const times = [row.converted_at, ...(moved?.goals ?? []).map((g) => g.firstAt)].filter(
        (at): at is number => at !== null,
      );
      return {
        visitorId: row.visitor,
        variant: row.variant,
        exposedAt: row.at,
        convertedAt: times.length ? Math.min(...times) : null,
        goals,
      };
    });
  }

  /** The stored rows of these visitors; a row that does not parse is logged and left out. */
  private exposuresOf(visitorIds: readonly string[]): StoredExposure[] {
    const exposures: StoredExposure[] = [];
    for (let start = 0; start < visitorIds.length; start += IDS_PER_STATEMENT) {
      const ids = visitorIds.slice(start, start + IDS_PER_STATEMENT);
      const cursor = this.sql.exec(
        `SELECT visitor, variant, at, converted_at FROM exposure WHERE visitor IN (${ids.map(() => "?").join(", ")})`,
        ...ids,
      );
      for (const raw of cursor) {
        const exposure = parseStored(StoredExposureSchema, raw, "exposure");
        if (exposure) exposures.push(exposure);
      }
    }
    return exposures;
  }

  /**
   * Erasure of one person, under every id they were recorded by (canonical and aliases): an
   * export of the experiment holds nothing of them, not even which ids were stitched.
   */
  async forget(visitorIds: readonly string[]): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      for (const id of visitorIds) {
        this.deleteVisitor(id);
        this.sql.exec("DELETE FROM adopted WHERE source = ? OR into_visitor = ?", id, id);
      }
    });
  }

  /** This object's experiment, when it is shard 0 (named as the experiment itself). */
  private shardZeroOf(): string | null {
    const name = this.ctx.id.name;
    return name && !name.includes("#") ? name : null;
  }

  /**
   * Before sharding, an experiment was counted in one object, the one shard 0 now is. Once, that
   * object moves the rows of visitors other shards own to them, a batch per alarm; an object with
   * no rows (every new experiment) has nothing to move.
   */
  private homeStrays(): void {
    if (this.shardZeroOf() === null || this.metaValue("homed") !== null) return;
    const any = this.sql.exec("SELECT 1 AS one FROM exposure LIMIT 1").toArray().length > 0;
    if (!any) {
      this.setMeta("homed", "1");
      return;
    }
    this.ctx.storage
      .setAlarm(Date.now())
      .catch((err: unknown) => recordDroppedWrite("experiment_rows_not_homed", err));
  }

  override async alarm(): Promise<void> {
    const experiment = this.shardZeroOf();
    if (experiment === null || this.metaValue("homed") !== null) return;
    const after = this.metaValue("homed_after") ?? "";
    const scanned = this.exposuresAfter(after, MOVE_BATCH);
    const strays = new Map<number, MovedVisitor[]>();
    for (const row of scanned) {
      const shard = shardOf(row.visitor);
      if (shard === 0) continue;
      const moved = this.movedOf(row.visitor, row.visitor);
      if (moved) strays.set(shard, [...(strays.get(shard) ?? []), moved]);
    }
    // Adopted first, then let go: a failure leaves a row in both, and the retry's adopt skips it.
    await Promise.all(
      [...strays].map(([shard, rows]) => experimentShard(this.env, experiment, shard).adopt(rows)),
    );
    this.ctx.storage.transactionSync(() => {
      for (const rows of strays.values()) for (const row of rows) this.deleteVisitor(row.visitorId);
      const last = scanned.at(-1)?.visitor;
      if (scanned.length < MOVE_BATCH) this.setMeta("homed", "1");
      else if (last !== undefined) this.setMeta("homed_after", last);
    });
    const moved = [...strays.values()].reduce((sum, rows) => sum + rows.length, 0);
    log("info", "experiment_rows_homed", { moved, done: scanned.length < MOVE_BATCH, shards: SHARDS });
    if (scanned.length >= MOVE_BATCH) await this.ctx.storage.setAlarm(Date.now());
  }

  private exposuresAfter(after: string, limit: number): StoredExposure[] {
    const rows: StoredExposure[] = [];
    for (const raw of this.sql.exec(
      "SELECT visitor, variant, at, converted_at FROM exposure WHERE visitor > ? ORDER BY visitor LIMIT ?",
      after,
      limit,
    )) {
      const row = parseStored(StoredExposureSchema, raw, "exposure");
      if (row) rows.push(row);
    }
    return rows;
  }

  private metaValue(key: string): string | null {
    const row = this.sql.exec("SELECT value FROM meta WHERE key = ?", key).toArray()[0];
    return typeof row?.value === "string" ? row.value : null;
  }

  private setMeta(key: string, value: string): void {
    this.sql.exec(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      key,
      value,
    );
  }
}
