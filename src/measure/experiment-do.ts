import { DurableObject } from "cloudflare:workers";
import type { Env } from "../edge/env.ts";

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

  /** Erasure of one person: their exposure row goes, so an export of the experiment holds nothing of them. */
  forget(visitorId: string): void {
    this.sql.exec("DELETE FROM exposure WHERE visitor = ?", visitorId);
  }
}
