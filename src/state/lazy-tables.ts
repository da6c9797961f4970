/**
 * The visitor object's tables that most visitors never write (dead letters, the export outbox, the
 * journeys' tables and their messages), created by their first write rather than when the object
 * starts: every table costs SQLite pages even empty, and an object is kept up to 400 idle days
 * (docs/decisions.md, record 24). A table never created reads as an empty one.
 *
 * Which of them this object's database holds is read from sqlite_master once, the first time it is
 * asked, then kept, and added to as they are created. Each module keeps its own table's DDL and
 * reaches its table only through its `LazyTable`, so no statement can meet a missing table. What is
 * kept is forgotten (read again when next asked) whenever storage may have lost a table: a wipe
 * (`deleteAll`) or a rolled-back transaction (a table created inside it went with it).
 */

type Row = Record<string, SqlStorageValue>;

/** The tables each object's database holds, by the object's SQL handle (one per object). */
const known = new WeakMap<SqlStorage, Set<string>>();

function tablesOf(sql: SqlStorage): Set<string> {
  let tables = known.get(sql);
  if (!tables) {
    tables = new Set(
      sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .toArray()
        .map((row) => row.name),
    );
    known.set(sql, tables);
  }
  return tables;
}

export interface LazyTable {
  /** Whether this object's database holds the table. */
  exists(sql: SqlStorage): boolean;
  /**
   * A statement that reads, updates or deletes rows of the table: its rows, or none when the table
   * was never created (there is nothing to read or change).
   */
  query<T extends Row>(sql: SqlStorage, query: string, ...bindings: SqlStorageValue[]): T[];
  /** A statement that writes rows into the table, which is created first if it does not exist yet. */
  write<T extends Row>(sql: SqlStorage, query: string, ...bindings: SqlStorageValue[]): SqlStorageCursor<T>;
}

/** `create` runs the table's DDL (CREATE TABLE IF NOT EXISTS, and its indexes). */
export function lazyTable(name: string, create: (sql: SqlStorage) => void): LazyTable {
  const exists = (sql: SqlStorage): boolean => tablesOf(sql).has(name);
  return {
    exists,
    query: <T extends Row>(sql: SqlStorage, query: string, ...bindings: SqlStorageValue[]): T[] =>
      exists(sql) ? sql.exec<T>(query, ...bindings).toArray() : [],
    write: <T extends Row>(sql: SqlStorage, query: string, ...bindings: SqlStorageValue[]) => {
      const tables = tablesOf(sql);
      if (!tables.has(name)) {
        create(sql);
        tables.add(name);
      }
      return sql.exec<T>(query, ...bindings);
    },
  };
}

/**
 * Storage was wiped, or a transaction rolled back: what was known of the tables may be wrong, so it
 * is read again from sqlite_master when next asked.
 */
export function forgetTables(sql: SqlStorage): void {
  known.delete(sql);
}

/**
 * `transactionSync` for the visitor object: when it rolls back, the tables it created are gone
 * again, so what was known of them is forgotten before the error goes on.
 */
export function transaction<T>(storage: DurableObjectStorage, sql: SqlStorage, run: () => T): T {
  try {
    return storage.transactionSync(run);
  } catch (err) {
    forgetTables(sql);
    throw err;
  }
}
