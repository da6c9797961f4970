import * as z from "zod";
import type { Millis, VisitorEvent } from "../core/model.ts";
import { emptyState, type MutableVisitorState, prune, type StateLimits } from "../core/visitor-state.ts";
import { ensureKeyedTables, type KeyedTable } from "../platform/keyed-tables.ts";
import { lazyTable } from "./lazy-tables.ts";
import { parseStored, parseStoredJson } from "./stored-value.ts";
import { type DeadLetter, DeadLetterSchema, PAGE_VIEW_ID_PREFIX } from "./visitor-object.ts";

/**
 * The visitor object's persistence and retention, on its SQLite storage: the tables, what is read
 * back when the object starts, the meta keys, pruning and dead letters. docs/storage.md is the
 * contract for every table and key here; each stored value has its schema below, used to write it
 * and to read it back.
 */

export const DAY_MS = 86400e3;
export const DEAD_LETTER_LIMIT = 100;
/** A visitor idle this long (the cookie's lifetime), or a forwarding address this old, is deleted whole. */
export const IDLE_DELETE_MS = 400 * DAY_MS;

const MillisSchema = z.number();

/** `meta.state`: the visitor's aggregates; the events live in their own table. */
export const StoredStateSchema = z.object({
  visitorId: z.string(),
  firstSeen: MillisSchema.nullable(),
  lastSeen: MillisSchema.nullable(),
  sessionCount: z.number(),
  counts: z.record(z.string(), z.array(z.tuple([MillisSchema, z.number()]))),
  // Both absent in state stored before the rules chose what to count: it counted every type, and
  // its log's cut is read back as just before its oldest event (loadHeld).
  counting: z.array(z.string()).nullable().optional(),
  prunedThrough: MillisSchema.nullable().optional(),
  lastByType: z.record(z.string(), MillisSchema),
  intent: z.record(z.string(), z.object({ value: z.number(), ts: MillisSchema })),
  engagement: z.record(
    z.string(),
    z.object({
      sends: z.number(),
      opens: z.number(),
      clicks: z.number(),
      lastAt: MillisSchema.nullable(),
      // Absent in state stored before it existed.
      hours: z.array(z.number()).readonly().optional(),
    }),
  ),
  engagementHours: z.array(z.number()),
  exposures: z.record(z.string(), z.array(MillisSchema)),
  assignments: z.record(z.string(), z.string()),
  conversions: z.record(z.string(), MillisSchema),
});
export type StoredState = z.infer<typeof StoredStateSchema>;

/** `meta.consent`: the answer per purpose. */
export const StoredConsentSchema = z.record(z.string(), z.boolean());
/** `meta.mergedFrom` (merge ids folded in) and `meta.handedExperiments` (experiments a handed-over history carried). */
export const IdListSchema = z.array(z.string());
/** `meta.consentAt`, `meta.mergedAt`: epoch milliseconds, written as decimal text. */
const MillisTextSchema = z.string().regex(/^\d+$/).transform(Number);

/**
 * `meta.journeyTraits`: the person's traits that journey triggers read (src/rules/journey-traits.ts),
 * as the last trait write passed them, and when (docs/decisions.md, record 19).
 */
export const JourneyTraitsSchema = z.object({ traits: z.record(z.string(), z.unknown()), at: MillisSchema });
export type JourneyTraits = z.infer<typeof JourneyTraitsSchema>;

/** One `event` row as SQLite gives it back; `props` is the event's properties as JSON text. */
const EventRowSchema = z.object({
  id: z.string(),
  ts: z.number(),
  type: z.string(),
  channel: z.string(),
  props: z.string(),
});
const PropsSchema = z.record(z.string(), z.unknown());

/** The meta keys: one row each (docs/storage.md). */
export type MetaKey =
  | "state"
  | "id"
  | "consent"
  | "consentAt"
  | "erased"
  | "mergedInto"
  | "mergedAt"
  | "mergedFrom"
  | "handedExperiments"
  | "journeyTraits";

/** Everything one object holds in memory: read once when it starts, so the decision path reads no storage. */
export interface HeldVisitor {
  state: MutableVisitorState;
  consent: Record<string, boolean>;
  erased: boolean;
  /** The person this visitor was merged into: its forwarding address. */
  mergedInto: string | null;
  /** When this object handed its history over (real clock). */
  mergedAt: Millis;
  /** Merge ids already folded into this one. */
  mergedFrom: string[];
  /** When consent was last set: a visitor who only answered a consent banner is active too. */
  consentAt: Millis;
  /** The traits journey triggers read, as the last trait write passed them (empty: none written). */
  traits: JourneyTraits;
}

/** What an object that holds nothing (new, erased or deleted) holds. */
export function emptyHeld(visitorId = ""): HeldVisitor {
  return {
    state: emptyState(visitorId),
    consent: {},
    erased: false,
    mergedInto: null,
    mergedAt: 0,
    mergedFrom: [],
    consentAt: 0,
    traits: { traits: {}, at: 0 },
  };
}

/**
 * The tables every visitor writes, keyed WITHOUT ROWID so a page view, an event or a meta value is
 * one row written (record 28): the log by time then id (loaded and pruned in that order), the meta
 * keys by themselves. Created when the object starts; an object stored before is rebuilt once
 * (src/platform/keyed-tables.ts). The others (remembered ids, dead letters, the outbox, the
 * journeys' tables) are created by their first write (lazy-tables.ts).
 */
const EVENT_TABLE: KeyedTable = {
  name: "event",
  create: `CREATE TABLE IF NOT EXISTS event (ts INTEGER NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
      channel TEXT NOT NULL, props TEXT NOT NULL, PRIMARY KEY (ts, id)) WITHOUT ROWID`,
  columns: ["ts", "id", "type", "channel", "props"],
};
const SEEN_CREATE =
  "CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, ts INTEGER NOT NULL) WITHOUT ROWID";
/** An object stored before keeps its `seen` rows, rebuilt keyed; a new one creates it on its first row. */
const SEEN_TABLE: KeyedTable = {
  name: "seen",
  create: SEEN_CREATE,
  columns: ["id", "ts"],
  onFirstWrite: true,
};
const META_TABLE: KeyedTable = {
  name: "meta",
  create: "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
  columns: ["key", "value"],
};

export function createTables(sql: SqlStorage): void {
  ensureKeyedTables(sql, [EVENT_TABLE, SEEN_TABLE, META_TABLE]);
}

/**
 * The ids of events the log let go while a replay of them could still be accepted (record 28): the
 * log itself, held whole in memory, answers for the rest. Created by its first row, which most
 * visitors never write (their events leave the log by age, when a replay is refused anyway).
 */
const seenTable = lazyTable("seen", (sql) => sql.exec(SEEN_CREATE));

/** Rejected events: created by the first one, which most visitors never send. */
const deadLetterTable = lazyTable("dead_letter", (sql) =>
  sql.exec(
    "CREATE TABLE IF NOT EXISTS dead_letter (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, reason TEXT NOT NULL, raw TEXT NOT NULL)",
  ),
);

/** The one table an erased object keeps (its tombstone lives there). */
export function createMetaTable(sql: SqlStorage): void {
  ensureKeyedTables(sql, [META_TABLE]);
}

/** Reads everything back from storage; a value that does not parse is logged and read as absent. */
export function loadHeld(sql: SqlStorage): HeldVisitor {
  const meta = new Map(
    sql
      .exec<{ key: string; value: string }>("SELECT key, value FROM meta")
      .toArray()
      .map((row) => [row.key, row.value]),
  );
  const visitorId = meta.get("id") ?? "";
  const stored = parseStoredJson(StoredStateSchema, meta.get("state"), "meta.state");
  const events = loadEvents(sql);
  const state: MutableVisitorState = stored
    ? {
        ...stored,
        counting: stored.counting ?? null,
        prunedThrough: stored.prunedThrough === undefined ? cutBefore(events) : stored.prunedThrough,
        events,
      }
    : { ...emptyState(visitorId), events };
  return {
    state,
    consent: parseStoredJson(StoredConsentSchema, meta.get("consent"), "meta.consent") ?? {},
    erased: meta.get("erased") === "1",
    mergedInto: meta.get("mergedInto") ?? null,
    mergedAt: readMillis(meta.get("mergedAt"), "meta.mergedAt"),
    mergedFrom: parseStoredJson(IdListSchema, meta.get("mergedFrom"), "meta.mergedFrom") ?? [],
    consentAt: readMillis(meta.get("consentAt"), "meta.consentAt"),
    traits: parseStoredJson(JourneyTraitsSchema, meta.get("journeyTraits"), "meta.journeyTraits") ?? {
      traits: {},
      at: 0,
    },
  };
}

/**
 * Where a log stored without its cut was cut, at the latest: just before its oldest event. Its
 * counters counted every event, so reading them up to there counts each event once.
 */
function cutBefore(events: readonly VisitorEvent[]): Millis | null {
  return events.length ? events[0]!.ts - 1 : null;
}

function readMillis(text: string | undefined, kind: string): Millis {
  return text === undefined ? 0 : (parseStored(MillisTextSchema, text, kind) ?? 0);
}

/** The event log, oldest first; a row that does not parse is logged and left out of memory. */
function loadEvents(sql: SqlStorage): VisitorEvent[] {
  const events: VisitorEvent[] = [];
  for (const raw of sql.exec("SELECT id, ts, type, channel, props FROM event ORDER BY ts, id")) {
    const row = parseStored(EventRowSchema, raw, "event");
    if (!row) continue;
    const props = parseStoredJson(PropsSchema, row.props, "event.props") ?? {};
    events.push({ id: row.id, ts: row.ts, type: row.type, channel: row.channel, props });
  }
  return events;
}

export function setMeta(sql: SqlStorage, key: MetaKey, value: string): void {
  sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, value);
}

export function deleteMeta(sql: SqlStorage, key: MetaKey): void {
  sql.exec("DELETE FROM meta WHERE key = ?", key);
}

export function saveState(sql: SqlStorage, state: MutableVisitorState): void {
  // Events live in their own table; the rest is small and written whole.
  const { events: _events, ...aggregates } = state;
  const stored: StoredState = aggregates;
  setMeta(sql, "state", JSON.stringify(stored));
}

export function saveJourneyTraits(sql: SqlStorage, traits: JourneyTraits): void {
  setMeta(sql, "journeyTraits", JSON.stringify(JourneyTraitsSchema.parse(traits)));
}

export function saveConsent(sql: SqlStorage, consent: Record<string, boolean>): void {
  setMeta(sql, "consent", JSON.stringify(StoredConsentSchema.parse(consent)));
}

export function saveIdList(
  sql: SqlStorage,
  key: "mergedFrom" | "handedExperiments",
  ids: readonly string[],
): void {
  setMeta(sql, key, JSON.stringify(ids));
}

/** The experiments a handed-over history carried (meta `handedExperiments`), as written by handOver. */
export function readHandedExperiments(sql: SqlStorage): string[] {
  const row = sql
    .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'handedExperiments'")
    .toArray()[0];
  return parseStoredJson(IdListSchema, row?.value, "meta.handedExperiments") ?? [];
}

/**
 * Events a replay of which is still accepted: live ones up to ACCEPT_WINDOW_MS old (the door's
 * window, LIMITS.pastMs in src/http/events.ts), backfilled ones up to the log's age.
 */
export const ACCEPT_WINDOW_MS = 7 * DAY_MS;

/** The ids an object has taken: its log's, as memory holds it (a batch adds what it stores). */
export function loggedIds(state: MutableVisitorState): Set<string> {
  return new Set(state.events.map((event) => event.id));
}

/**
 * Writes a new event; false when its id was taken before (idempotency): it is in the log (`logged`,
 * memory's copy of it) or among the ids the log let go while a replay could still come (`seen`).
 * The page views the proxy records carry ids it just made (`pv:<uuid>`), never sent twice: they
 * pass no `logged` and skip the check.
 */
export function storeEvent(sql: SqlStorage, event: VisitorEvent, logged: Set<string> | null): boolean {
  if (logged) {
    if (logged.has(event.id)) return false;
    if (seenTable.query(sql, "SELECT 1 AS taken FROM seen WHERE id = ?", event.id).length > 0) return false;
    logged.add(event.id);
  }
  sql.exec(
    "INSERT OR REPLACE INTO event (ts, id, type, channel, props) VALUES (?, ?, ?, ?, ?)",
    event.ts,
    event.id,
    event.type,
    event.channel,
    JSON.stringify(event.props),
  );
  return true;
}

/** Remembers event ids seen elsewhere (a merged visitor's), so their replays stay duplicates here. */
export function rememberSeen(sql: SqlStorage, seen: ReadonlyArray<readonly [string, Millis]>): void {
  for (const [id, ts] of seen)
    seenTable.write(sql, "INSERT INTO seen (id, ts) VALUES (?, ?) ON CONFLICT DO NOTHING", id, ts);
}

/** The event ids seen since `since`, oldest window first: what a merge carries so replays stay idempotent. */
export function readSeenSince(sql: SqlStorage, since: Millis): Array<readonly [string, Millis]> {
  return seenTable
    .query<{ id: string; ts: number }>(sql, "SELECT id, ts FROM seen WHERE ts >= ?", since)
    .map((row) => [row.id, row.ts] as const);
}

export function forgetSeenBefore(sql: SqlStorage, before: Millis): void {
  seenTable.query(sql, "DELETE FROM seen WHERE ts < ?", before);
}

/** The time of the earliest event id still remembered (null: none). */
export function oldestSeenAt(sql: SqlStorage): Millis | null {
  return seenTable.query<{ ts: number | null }>(sql, "SELECT MIN(ts) AS ts FROM seen")[0]?.ts ?? null;
}

/**
 * Prunes memory and storage to the same bounds, then writes the aggregate row (no I/O awaited).
 * `onlyIfPruned` (the upkeep's): the row is written only when something went; most wake-ups of a
 * quiet visitor's object find the bound it woke for already moved by a later write.
 */
export function pruneAndSave(
  sql: SqlStorage,
  state: MutableVisitorState,
  now: Millis,
  limits: StateLimits,
  onlyIfPruned = false,
): void {
  const pruned = prune(state, now, limits);
  if (!pruned.changed && onlyIfPruned) return;
  if (pruned.letGo.length > 0) letGo(sql, pruned.letGo, state, now, limits);
  saveState(sql, state);
}

/**
 * The events the log let go leave storage; the ids of those a replay could still bring (the
 * 500-event bound lets go of recent events; age only of events past every accept window) are kept
 * in `seen`, so the replay stays a duplicate.
 */
function letGo(
  sql: SqlStorage,
  gone: readonly VisitorEvent[],
  state: MutableVisitorState,
  now: Millis,
  limits: StateLimits,
): void {
  deletePrunedEvents(sql, state, now);
  rememberSeen(sql, replayable(gone, now, limits));
}

/**
 * The events of `events` a replay of which could still be accepted at `now`, as [id, ts]. The
 * proxy's page views (`pv:<uuid>`, made by the worker for one page) are never sent again.
 */
function replayable(
  events: readonly VisitorEvent[],
  now: Millis,
  limits: StateLimits,
): Array<readonly [string, Millis]> {
  const since = now - Math.max(limits.maxEventAgeMs, ACCEPT_WINDOW_MS);
  return events
    .filter((event) => event.ts >= since && !event.id.startsWith(PAGE_VIEW_ID_PREFIX))
    .map((event) => [event.id, event.ts] as const);
}

function deletePrunedEvents(sql: SqlStorage, state: MutableVisitorState, now: Millis): void {
  const oldestKept = state.events[0]?.ts ?? now + 1;
  sql.exec("DELETE FROM event WHERE ts < ?", oldestKept);
  // Same-millisecond ties at the boundary: keep exactly the ids still in memory.
  const kept = new Set(state.events.map((event) => event.id));
  for (const row of sql.exec<{ id: string }>("SELECT id FROM event WHERE ts = ?", oldestKept).toArray()) {
    if (!kept.has(row.id)) sql.exec("DELETE FROM event WHERE ts = ? AND id = ?", oldestKept, row.id);
  }
}

/** Keeps a rejected or unappliable event aside (the last DEAD_LETTER_LIMIT of them). */
export function addDeadLetter(sql: SqlStorage, letter: DeadLetter): void {
  deadLetterTable.write(
    sql,
    "INSERT INTO dead_letter (at, reason, raw) VALUES (?, ?, ?)",
    letter.at,
    letter.reason.slice(0, 2000),
    letter.raw.slice(0, 4096),
  );
  deadLetterTable.query(
    sql,
    "DELETE FROM dead_letter WHERE seq NOT IN (SELECT seq FROM dead_letter ORDER BY seq DESC LIMIT ?)",
    DEAD_LETTER_LIMIT,
  );
}

export function readDeadLetters(sql: SqlStorage): DeadLetter[] {
  const letters: DeadLetter[] = [];
  for (const row of deadLetterTable.query(sql, "SELECT at, reason, raw FROM dead_letter ORDER BY seq")) {
    const letter = parseStored(DeadLetterSchema, row, "dead_letter");
    if (letter) letters.push(letter);
  }
  return letters;
}

/**
 * Withdrawn personalization consent: the behaviour held so far goes; consent and identity stay, and
 * the ids of its events a replay could still bring are remembered, so a replay is no new event.
 */
export function deleteBehaviour(
  sql: SqlStorage,
  log: readonly VisitorEvent[],
  now: Millis,
  limits: StateLimits,
): void {
  rememberSeen(sql, replayable(log, now, limits));
  sql.exec("DELETE FROM event");
  deadLetterTable.query(sql, "DELETE FROM dead_letter");
}

/**
 * After a hand-over: everything but the forwarding address and the visitor's own id goes (their rows:
 * the tables stay, so what lazy-tables.ts knows of them stays true).
 */
export function deleteAllButAddress(sql: SqlStorage): void {
  sql.exec("DELETE FROM event");
  deadLetterTable.query(sql, "DELETE FROM dead_letter");
  seenTable.query(sql, "DELETE FROM seen");
  sql.exec("DELETE FROM meta WHERE key NOT IN ('mergedInto', 'id')");
}
