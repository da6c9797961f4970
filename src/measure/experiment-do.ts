import { DurableObject } from "cloudflare:workers";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";

/**
 * One object per experiment: who was exposed to which variant, and who converted. Counting unique
 * visitors (not page views) is what makes the statistics honest: a visitor who reloads ten times is
 * one exposure. The first variant a visitor was exposed to is theirs for the analysis (intent to treat).
 */
export interface ArmCounts {
  readonly variant: string;
  readonly exposures: number;
  readonly conversions: number;
}

/** One visitor's row, as the admin export shows it. */
export interface ExposureRow {
  readonly visitorId: string;
  readonly variant: string;
  readonly exposedAt: number;
  readonly convertedAt: number | null;
}

type Row = { visitor: string; variant: string; at: number; converted_at: number | null };

export class ExperimentDO extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS exposure (
      visitor TEXT PRIMARY KEY, variant TEXT NOT NULL, at INTEGER NOT NULL, converted_at INTEGER)`);
  }

  /** Records exposures; a visitor already exposed keeps their first variant. */
  expose(items: ReadonlyArray<{ visitorId: string; variant: string; at: number }>): number {
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

  /** A conversion counts once per visitor, and only after that visitor was exposed. */
  convert(visitorId: string, at: number): boolean {
    const cursor = this.sql.exec(
      "UPDATE exposure SET converted_at = ? WHERE visitor = ? AND converted_at IS NULL AND at <= ?",
      at,
      visitorId,
      at,
    );
    return cursor.rowsWritten > 0;
  }

  counts(): ArmCounts[] {
    return this.sql
      .exec<{ variant: string; exposures: number; conversions: number }>(
        "SELECT variant, COUNT(*) AS exposures, COUNT(converted_at) AS conversions FROM exposure GROUP BY variant ORDER BY variant",
      )
      .toArray()
      .map((r) => ({
        variant: r.variant,
        exposures: Number(r.exposures),
        conversions: Number(r.conversions),
      }));
  }

  /**
   * Stitching: the rows recorded under `from` (an anonymous id) become `to`'s (the person's), so a
   * conversion sent under the person's id after login finds the exposure seen before it. A person
   * exposed under both ids counts once, in the arm they saw first (intent to treat), converted at
   * the earliest conversion not before that exposure. Idempotent: nothing left under `from`.
   */
  rekey(from: string, to: string): boolean {
    if (from === to) return false;
    const rows = this.rowsOf([from, to]);
    const source = rows.find((r) => r.visitor === from);
    if (!source) return false;
    const target = rows.find((r) => r.visitor === to);
    const first = target && target.at <= source.at ? target : source;
    const conversions = [source.converted_at, target?.converted_at ?? null].filter(
      (at): at is number => at !== null && at >= first.at,
    );
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("DELETE FROM exposure WHERE visitor IN (?, ?)", from, to);
      this.sql.exec(
        "INSERT INTO exposure (visitor, variant, at, converted_at) VALUES (?, ?, ?, ?)",
        to,
        first.variant,
        first.at,
        conversions.length ? Math.min(...conversions) : null,
      );
    });
    return true;
  }

  /** A person's rows (their canonical id and aliases), for the admin export. */
  rows(visitorIds: readonly string[]): ExposureRow[] {
    return this.rowsOf(visitorIds).map((r) => ({
      visitorId: r.visitor,
      variant: r.variant,
      exposedAt: r.at,
      convertedAt: r.converted_at,
    }));
  }

  private rowsOf(visitorIds: readonly string[]): Row[] {
    const rows: Row[] = [];
    // Durable Object SQL binds at most 100 parameters per statement; a person may have 1000 aliases.
    for (let i = 0; i < visitorIds.length; i += 50) {
      const ids = visitorIds.slice(i, i + 50);
      rows.push(
        ...this.sql
          .exec<Row>(
            `SELECT visitor, variant, at, converted_at FROM exposure WHERE visitor IN (${ids.map(() => "?").join(", ")})`,
            ...ids,
          )
          .toArray(),
      );
    }
    return rows;
  }

  /**
   * Erasure of one person, under every id they were recorded by (canonical and aliases): an
   * export of the experiment holds nothing of them.
   */
  forget(visitorIds: readonly string[]): void {
    for (const id of visitorIds) this.sql.exec("DELETE FROM exposure WHERE visitor = ?", id);
  }
}

/** The experiment's object (one per experiment id), as visitorObject is the visitor's. */
export function experimentObject(env: Pick<Env, "EXPERIMENTS">, experiment: string) {
  return env.EXPERIMENTS.get(env.EXPERIMENTS.idFromName(experiment));
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
    await Promise.all(conversions.map((c) => experimentObject(env, c.experiment).convert(visitorId, c.at)));
  } catch (err) {
    log("warn", "conversion_not_recorded", { count: conversions.length, error: String(err) });
  }
}
