import { DurableObject } from "cloudflare:workers";
import { mergeIntent } from "../core/intent.ts";
import type { Millis, VisitorEvent, VisitorState } from "../core/model.ts";
import {
  applyEvent,
  DEFAULT_LIMITS,
  emptyState,
  firstAfter,
  type MutableVisitorState,
  prune,
  recordExposure,
} from "../core/visitor-state.ts";
import type { Env } from "../edge/env.ts";
import { activeRules } from "../edge/rules-loader.ts";

/**
 * One Durable Object per canonical visitor, on SQLite storage. Events are rows (idempotent by id);
 * the rest of the state (counters, scores, engagement, assignments, exposures) is one small JSON
 * row. The whole state is held in memory, so the decision path's one call reads no storage.
 * Responses leave the object only after its writes are durable (output gates).
 */

export interface IngestOptions {
  readonly now: Millis;
  /** Rejected events of the same batch, kept aside for inspection (dead letters). */
  readonly rejected?: ReadonlyArray<{
    readonly index: number;
    readonly reason: string;
    readonly raw: string;
  }>;
}

export type IngestResult =
  | {
      readonly status: "stored";
      readonly accepted: number;
      readonly duplicates: number;
      /** Experiment goals reached by this batch, for measurement. */
      readonly conversions: ReadonlyArray<{
        readonly experiment: string;
        readonly variant: string;
        readonly at: Millis;
      }>;
    }
  | { readonly status: "rate_limited"; readonly retryAfterSeconds: number }
  | { readonly status: "suppressed" }
  | { readonly status: "no_consent" };

export interface VisitorDump {
  readonly visitorId: string;
  readonly state: VisitorState;
  readonly consent: Record<string, boolean>;
  readonly deadLetters: ReadonlyArray<{ at: Millis; reason: string; raw: string }>;
  readonly mergedFrom: readonly string[];
}

/** A token bucket per visitor: a flooding client is slowed down without starving other visitors. */
const RATE_PER_SECOND = 20;
const BURST = 200;
const DEAD_LETTER_LIMIT = 100;
const IDLE_DELETE_MS = 400 * 86400e3;
const DAY_MS = 86400e3;
const PAGE_VIEW_FLUSH_MS = 1000;

export class VisitorDO extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private state: MutableVisitorState = emptyState("");
  private consent: Record<string, boolean> = {};
  private erased = false;
  private mergedFrom: string[] = [];
  private tokens = BURST;
  private refilledAt = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS event (
        id TEXT PRIMARY KEY, ts INTEGER NOT NULL, type TEXT NOT NULL, channel TEXT NOT NULL, props TEXT NOT NULL)`);
      this.sql.exec("CREATE INDEX IF NOT EXISTS event_ts ON event (ts)");
      this.sql.exec("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, ts INTEGER NOT NULL)");
      this.sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      this.sql.exec(
        "CREATE TABLE IF NOT EXISTS dead_letter (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, reason TEXT NOT NULL, raw TEXT NOT NULL)",
      );
      this.load();
    });
  }

  private load(): void {
    const meta = new Map(
      this.sql
        .exec<{ key: string; value: string }>("SELECT key, value FROM meta")
        .toArray()
        .map((r) => [r.key, r.value]),
    );
    const stored = meta.get("state");
    this.state = stored ? (JSON.parse(stored) as MutableVisitorState) : emptyState(meta.get("id") ?? "");
    this.state.events = this.sql
      .exec<{ id: string; ts: number; type: string; channel: string; props: string }>(
        "SELECT id, ts, type, channel, props FROM event ORDER BY ts, id",
      )
      .toArray()
      .map((r) => ({ id: r.id, ts: r.ts, type: r.type, channel: r.channel, props: JSON.parse(r.props) }));
    this.consent = JSON.parse(meta.get("consent") ?? "{}");
    this.erased = meta.get("erased") === "1";
    this.mergedFrom = JSON.parse(meta.get("mergedFrom") ?? "[]");
  }

  private saveMeta(): void {
    // Events live in their own table; the rest is small and written whole.
    const { events: _events, ...rest } = this.state;
    this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('state', ?)", JSON.stringify(rest));
  }

  private ensureId(visitorId: string): void {
    if (!this.state.visitorId) {
      this.state.visitorId = visitorId;
      this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('id', ?)", visitorId);
    }
  }

  private async scoring() {
    const rules = await activeRules(this.env);
    return rules?.compiled ?? null;
  }

  private takeTokens(n: number, now: Millis): number {
    const elapsed = Math.max(0, now - this.refilledAt) / 1000;
    this.tokens = Math.min(BURST, this.tokens + elapsed * RATE_PER_SECOND);
    this.refilledAt = now;
    if (this.tokens >= n) {
      this.tokens -= n;
      return 0;
    }
    return Math.ceil((n - this.tokens) / RATE_PER_SECOND);
  }

  /** Stores new events (duplicates by id are counted, not applied twice) and any dead letters. */
  async ingest(
    visitorId: string,
    events: readonly VisitorEvent[],
    options: IngestOptions,
  ): Promise<IngestResult> {
    if (this.erased) return { status: "suppressed" };
    for (const r of options.rejected ?? []) this.deadLetter(options.now, r.reason, r.raw);
    if (this.consent.personalization === false) return { status: "no_consent" };
    const retryAfterSeconds = this.takeTokens(events.length, options.now);
    if (retryAfterSeconds > 0) return { status: "rate_limited", retryAfterSeconds };
    this.ensureId(visitorId);
    const scoring = await this.scoring();
    const before = { ...this.state.conversions };
    let accepted = 0;
    let duplicates = 0;
    for (const e of events) {
      if (!this.storeEvent(e)) {
        duplicates++;
        continue;
      }
      applyEvent(this.state, e, scoring);
      accepted++;
    }
    if (accepted > 0) this.persistAfterApply(options.now);
    const conversions: Array<{ experiment: string; variant: string; at: Millis }> = [];
    if (scoring) {
      for (const exp of Object.values(scoring.experiments)) {
        const at = this.state.conversions[exp.goal];
        const variant = this.state.assignments[exp.id];
        if (at !== undefined && at !== before[exp.goal] && variant)
          conversions.push({ experiment: exp.id, variant, at });
      }
    }
    return { status: "stored", accepted, duplicates, conversions };
  }

  /** Writes a new event; false when its id was seen before (idempotency). */
  private storeEvent(e: VisitorEvent): boolean {
    if (this.sql.exec("SELECT 1 FROM seen WHERE id = ?", e.id).toArray().length > 0) return false;
    this.sql.exec("INSERT INTO seen (id, ts) VALUES (?, ?)", e.id, e.ts);
    this.sql.exec(
      "INSERT INTO event (id, ts, type, channel, props) VALUES (?, ?, ?, ?, ?)",
      e.id,
      e.ts,
      e.type,
      e.channel,
      JSON.stringify(e.props),
    );
    return true;
  }

  private persistAfterApply(now: Millis): void {
    const countBefore = this.state.events.length;
    prune(this.state, now);
    if (this.state.events.length < countBefore) {
      const oldestKept = this.state.events[0]?.ts ?? now;
      this.sql.exec("DELETE FROM event WHERE ts < ?", oldestKept);
      // Same-millisecond ties at the boundary: keep exactly the ids still in memory.
      const kept = new Set(this.state.events.map((e) => e.id));
      for (const row of this.sql
        .exec<{ id: string }>("SELECT id FROM event WHERE ts = ?", oldestKept)
        .toArray()) {
        if (!kept.has(row.id)) this.sql.exec("DELETE FROM event WHERE id = ?", row.id);
      }
    }
    this.saveMeta();
    void this.scheduleAlarm(now);
  }

  private alarmChecked = false;

  /** Once per object lifetime: the daily upkeep alarm exists (the alarm re-arms itself). */
  private async scheduleAlarm(now: Millis): Promise<void> {
    if (this.alarmChecked) return;
    this.alarmChecked = true;
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now + DAY_MS);
  }

  private deadLetter(at: Millis, reason: string, raw: string): void {
    this.sql.exec(
      "INSERT INTO dead_letter (at, reason, raw) VALUES (?, ?, ?)",
      at,
      reason.slice(0, 2000),
      raw.slice(0, 4096),
    );
    this.sql.exec(
      "DELETE FROM dead_letter WHERE seq NOT IN (SELECT seq FROM dead_letter ORDER BY seq DESC LIMIT ?)",
      DEAD_LETTER_LIMIT,
    );
  }

  /** The one decision-path call: the state the engine needs, optionally recording this page view. */
  async snapshot(options: {
    now: Millis;
    pageView?: VisitorEvent | undefined;
    visitorId?: string;
    /** Only events after this time are sent back: the rules read no further (eventHorizonMs). */
    eventsSince?: Millis;
  }): Promise<VisitorState> {
    const pageView = options.pageView;
    if (pageView && !this.erased && this.consent.personalization !== false) {
      if (options.visitorId) this.ensureId(options.visitorId);
      // The page view counts in this decision at once (memory), and is written just after the
      // answer leaves, so the page never waits on a storage flush. A page view is not an
      // acknowledged event: losing one to a crash loses a view, never a 202.
      applyEvent(this.state, pageView, await this.scoring());
      this.pendingViews.push(pageView);
      // Page views are written together, at most once a second per visitor: one storage flush
      // for a burst of pages instead of one per page.
      this.flushTimer ??= setTimeout(() => this.flushPageViews(), PAGE_VIEW_FLUSH_MS);
    }
    const since = options.eventsSince;
    if (since === undefined || since <= (this.state.events[0]?.ts ?? Number.POSITIVE_INFINITY))
      return this.state;
    // What crosses the RPC boundary is copied: send only the part of the log the rules read.
    return { ...this.state, events: this.state.events.slice(firstAfter(this.state.events, since)) };
  }

  private pendingViews: VisitorEvent[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;

  private flushPageViews(): void {
    this.flushTimer = null;
    const views = this.pendingViews;
    this.pendingViews = [];
    if (this.erased || views.length === 0) return;
    let stored = 0;
    for (const v of views) if (this.storeEvent(v)) stored++;
    if (stored > 0) this.persistAfterApply(Date.now());
  }

  /** Exposures (frequency caps) and new experiment assignments (sticky: the first one stays). */
  recordDecision(options: {
    now: Millis;
    exposures: ReadonlyArray<{ experience: string }>;
    assignments: Readonly<Record<string, string>>;
  }): void {
    if (this.erased) return;
    for (const x of options.exposures) recordExposure(this.state, x.experience, options.now);
    for (const [experiment, variant] of Object.entries(options.assignments)) {
      this.state.assignments[experiment] ??= variant;
    }
    this.saveMeta();
  }

  setConsent(consent: Record<string, boolean>): Record<string, boolean> {
    this.consent = { ...this.consent, ...consent };
    this.sql.exec(
      "INSERT OR REPLACE INTO meta (key, value) VALUES ('consent', ?)",
      JSON.stringify(this.consent),
    );
    return this.consent;
  }

  exportAll(): VisitorDump | null {
    if (this.erased || (this.state.events.length === 0 && !this.state.visitorId)) return null;
    return {
      visitorId: this.state.visitorId,
      state: this.state,
      consent: this.consent,
      deadLetters: this.sql
        .exec<{ at: number; reason: string; raw: string }>(
          "SELECT at, reason, raw FROM dead_letter ORDER BY seq",
        )
        .toArray(),
      mergedFrom: this.mergedFrom,
    };
  }

  /**
   * Stitching: folds another visitor's history into this one. Idempotent by merge id (the source
   * visitor's id): merging twice changes nothing. This visitor's assignments win over the source's.
   */
  async absorb(
    mergeId: string,
    source: VisitorDump,
    now: Millis,
  ): Promise<{ merged: boolean; events: number }> {
    if (this.erased) return { merged: false, events: 0 };
    if (this.mergedFrom.includes(mergeId)) return { merged: false, events: 0 };
    const scoring = await this.scoring();
    let added = 0;
    for (const e of source.state.events) {
      if (!this.storeEvent(e)) continue;
      // Scores are merged below from both stored scores, not re-derived from events.
      applyEvent(this.state, e, scoring ? { ...scoring, scoreEvent: () => [] } : null);
      added++;
    }
    this.state.intent = mergeIntent(this.state.intent, source.state.intent, now, scoring?.dimensions ?? {});
    for (const [exp, variant] of Object.entries(source.state.assignments))
      this.state.assignments[exp] ??= variant;
    for (const [id, times] of Object.entries(source.state.exposures)) {
      for (const t of times) recordExposure(this.state, id, t);
    }
    this.mergedFrom.push(mergeId);
    this.sql.exec(
      "INSERT OR REPLACE INTO meta (key, value) VALUES ('mergedFrom', ?)",
      JSON.stringify(this.mergedFrom),
    );
    this.persistAfterApply(now);
    return { merged: true, events: added };
  }

  /** Erases everything held, and leaves a tombstone so later events for this person are refused. */
  async erase(): Promise<void> {
    this.pendingViews = [];
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('erased', '1')");
    this.state = emptyState("");
    this.consent = {};
    this.mergedFrom = [];
    this.erased = true;
  }

  /** Daily upkeep: prune old data; a visitor idle for 400 days is deleted whole. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    if (this.erased) return;
    if (this.state.lastSeen !== null && now - this.state.lastSeen > IDLE_DELETE_MS) {
      await this.ctx.storage.deleteAll();
      this.state = emptyState("");
      return;
    }
    this.sql.exec("DELETE FROM seen WHERE ts < ?", now - DEFAULT_LIMITS.maxEventAgeMs - DAY_MS);
    this.persistAfterApply(now);
    await this.ctx.storage.setAlarm(now + DAY_MS);
  }
}
