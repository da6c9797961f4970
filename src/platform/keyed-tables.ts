/**
 * Tables keyed by what they are read by, stored WITHOUT ROWID (docs/decisions.md, record 28).
 *
 * Durable Objects bill every row a statement writes, and an index entry is a row: a rowid table
 * whose key is TEXT writes the row and its key's hidden index, two rows for one fact, and one more
 * per secondary index (measured in workerd with the cursor's `rowsWritten`: a visitor's page view
 * wrote 3 rows, an id remembered 2, a meta value replaced 2). Keyed WITHOUT ROWID, the key is the
 * table's own order, and each of those writes is one row.
 *
 * Objects stored before keep what they hold: a table whose stored layout is not the wanted one is
 * rebuilt once, when its object starts, in the same synchronous turn (Durable Objects commit a
 * turn's writes together), its rows copied over and the old table (and its indexes) dropped.
 */

export interface KeyedTable {
  readonly name: string;
  /** The `CREATE TABLE IF NOT EXISTS <name> (…) WITHOUT ROWID` statement. */
  readonly create: string;
  /** The columns a rebuild copies, the same in the old layout and the new. */
  readonly columns: readonly string[];
  /** Created by its first write elsewhere (src/state/lazy-tables.ts): here only rebuilt if stored before. */
  readonly onFirstWrite?: boolean;
}

/**
 * Creates each table, or rebuilds it from the layout it was stored with: one read of sqlite_master
 * when every table is as wanted (the usual start).
 */
export function ensureKeyedTables(sql: SqlStorage, tables: readonly KeyedTable[]): void {
  const stored = new Map(
    sql
      .exec<{ name: string; sql: string }>("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
      .toArray()
      .map((row) => [row.name, row.sql]),
  );
  for (const table of tables) {
    const layout = stored.get(table.name);
    if (layout === undefined) {
      if (!table.onFirstWrite) sql.exec(table.create);
    } else if (!/WITHOUT\s+ROWID\s*$/i.test(layout)) rebuild(sql, table);
  }
}

function rebuild(sql: SqlStorage, table: KeyedTable): void {
  const old = `${table.name}_rowid`;
  const columns = table.columns.join(", ");
  sql.exec(`ALTER TABLE ${table.name} RENAME TO ${old}`);
  sql.exec(table.create);
  sql.exec(`INSERT OR IGNORE INTO ${table.name} (${columns}) SELECT ${columns} FROM ${old}`);
  // Its indexes (the event log's `event_ts`) go with it.
  sql.exec(`DROP TABLE ${old}`);
}
