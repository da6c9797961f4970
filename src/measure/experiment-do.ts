import { DurableObject } from "cloudflare:workers";
import * as z from "zod";
import type { Env } from "../platform/env.ts";
import { parseStored } from "../state/stored-value.ts";
import type { ArmCounts, ExperimentObject, ExposureRow } from "./experiment-object.ts";

/**
 * One object per experiment: who was exposed to which variant, and who converted. Counting unique
 * visitors (not page views) is what makes the statistics honest: a visitor who reloads ten times is
 * one exposure. The first variant a visitor was exposed to is theirs for the analysis (intent to treat).
 * Callers use the contract in experiment-object.ts.
 */

/** One `exposure` row as SQLite gives it back. */
const StoredExposureSchema = z.object({
  visitor: z.string(),
  variant: z.string(),
  at: z.number(),
  converted_at: z.number().nullable(),
});
type StoredExposure = z.infer<typeof StoredExposureSchema>;

const ArmCountRowSchema = z.object({ variant: z.string(), exposures: z.number(), conversions: z.number() });

/** Durable Object SQL binds at most 100 parameters per statement; a person may have 1000 aliases. */
const IDS_PER_STATEMENT = 50;

export class ExperimentDO extends DurableObject<Env> implements ExperimentObject {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS exposure (
      visitor TEXT PRIMARY KEY, variant TEXT NOT NULL, at INTEGER NOT NULL, converted_at INTEGER)`);
  }

  // The methods are async for the contract's sake only: none awaits, so each runs whole, as before.

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

  /** A conversion counts once per visitor, and only after that visitor was exposed. */
  async convert(visitorId: string, at: number): Promise<boolean> {
    const cursor = this.sql.exec(
      "UPDATE exposure SET converted_at = ? WHERE visitor = ? AND converted_at IS NULL AND at <= ?",
      at,
      visitorId,
      at,
    );
    return cursor.rowsWritten > 0;
  }

  async counts(): Promise<ArmCounts[]> {
    const arms: ArmCounts[] = [];
    for (const raw of this.sql.exec(
      "SELECT variant, COUNT(*) AS exposures, COUNT(converted_at) AS conversions FROM exposure GROUP BY variant ORDER BY variant",
    )) {
      const arm = parseStored(ArmCountRowSchema, raw, "exposure.counts");
      if (arm) arms.push(arm);
    }
    return arms;
  }

  /**
   * Stitching: the rows recorded under `from` (an anonymous id) become `to`'s (the person's), so a
   * conversion sent under the person's id after login finds the exposure seen before it. A person
   * exposed under both ids counts once, in the arm they saw first (intent to treat), converted at
   * the earliest conversion not before that exposure. Idempotent: nothing left under `from`.
   */
  async rekey(from: string, to: string): Promise<boolean> {
    if (from === to) return false;
    const rows = this.exposuresOf([from, to]);
    const source = rows.find((row) => row.visitor === from);
    if (!source) return false;
    const target = rows.find((row) => row.visitor === to);
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
  async rows(visitorIds: readonly string[]): Promise<ExposureRow[]> {
    return this.exposuresOf(visitorIds).map((row) => ({
      visitorId: row.visitor,
      variant: row.variant,
      exposedAt: row.at,
      convertedAt: row.converted_at,
    }));
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
   * export of the experiment holds nothing of them.
   */
  async forget(visitorIds: readonly string[]): Promise<void> {
    for (const id of visitorIds) this.sql.exec("DELETE FROM exposure WHERE visitor = ?", id);
  }
}
