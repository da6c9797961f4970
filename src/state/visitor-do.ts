import { DurableObject } from "cloudflare:workers";
import * as z from "zod";
import type { ConsentMode } from "../core/consent.ts";
import type { Consent, Millis, VisitorEvent, VisitorState } from "../core/model.ts";
import { type PrivacyVerdict, privacyVerdict } from "../core/privacy.ts";
import {
  applyEvent,
  emptyState,
  firstAfter,
  type MutableVisitorState,
  own,
  prune,
  recordExposure,
  type StateLimits,
  stateLimits,
} from "../core/visitor-state.ts";
import { readConfig } from "../platform/config.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { mergeVisitorState } from "./merge.ts";
import { activeRules } from "./rules-loader.ts";

/**
 * One Durable Object per canonical visitor, on SQLite storage. Events are rows (idempotent by id);
 * the rest of the state (counters, scores, engagement, assignments, exposures) is one small JSON
 * row. The whole state is held in memory, so the decision path's one call reads no storage.
 * Responses leave the object only after its writes are durable (output gates), so a 202 built
 * from `ingest`'s answer means the events are stored.
 *
 * After identity stitching, an anonymous visitor's object hands its history over to the known
 * person's object and keeps only a forwarding address (`mergedInto`): a browser or an isolate that
 * still uses the anonymous id (KV aliases take up to a minute to reach every location) is served
 * by the known person's object, one hop away, and nothing is written under the old id again.
 */

export interface IngestOptions {
  readonly now: Millis;
  /** Rejected events of the same batch, kept aside for inspection (dead letters). */
  readonly rejected?: ReadonlyArray<{
    readonly index: number;
    readonly reason: string;
    readonly raw: string;
  }>;
  /** Set by an object forwarding to the one it was merged into: a call is forwarded at most once. */
  readonly forwarded?: boolean;
  /** How an unanswered purpose is read (the deployment's CONSENT_MODE); opt-out when absent. */
  readonly consentMode?: ConsentMode;
}

export type IngestResult =
  | {
      readonly status: "stored";
      readonly accepted: number;
      readonly duplicates: number;
      /** Events that could not be applied (a defect, not bad input): kept as dead letters, not stored, so a retry tries again. */
      readonly failed: ReadonlyArray<{ readonly id: string; readonly reason: string }>;
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

export interface SnapshotOptions {
  readonly now: Millis;
  /** The page being served, counted in this very decision (and stored just after). */
  readonly pageView?: VisitorEvent | undefined;
  readonly visitorId?: string;
  /** Only events after this time are sent back: the rules read no further (eventHorizonMs). */
  readonly eventsSince?: Millis;
  readonly forwarded?: boolean;
  /** How an unanswered purpose is read (the deployment's CONSENT_MODE); opt-out when absent. */
  readonly consentMode?: ConsentMode;
}

export interface DecisionRecord {
  readonly now: Millis;
  readonly exposures: ReadonlyArray<{ readonly experience: string; readonly placement?: string }>;
  /** New experiment assignments; sticky: an experiment already assigned keeps its variant. */
  readonly assignments: Readonly<Record<string, string>>;
  /** Experiment → stored variant it no longer has: that one assignment is replaced, if still stored. */
  readonly replacing?: Readonly<Record<string, string>> | undefined;
  readonly forwarded?: boolean;
  /** How an unanswered purpose is read (the deployment's CONSENT_MODE); opt-out when absent. */
  readonly consentMode?: ConsentMode;
  /** The request carried Global Privacy Control: nothing is recorded. */
  readonly gpc?: boolean;
}

export interface DeadLetter {
  readonly at: Millis;
  readonly reason: string;
  readonly raw: string;
}

/** Everything one object holds: the admin export, and what a merge carries to the known person. */
export interface VisitorDump {
  readonly visitorId: string;
  readonly state: VisitorState;
  readonly consent: Consent;
  readonly deadLetters: readonly DeadLetter[];
  /** Merge ids (anonymous visitor ids) already folded into this one. */
  readonly mergedFrom: readonly string[];
  /** Event ids seen recently (beyond the kept log), so replays stay idempotent after a merge. */
  readonly seen?: ReadonlyArray<readonly [string, Millis]>;
}

export interface MergeResult {
  readonly merged: boolean;
  /** Events added to the target's log. */
  readonly events: number;
  /**
   * Why nothing was merged: the target was erased, the source is the target itself, or the source
   * was already merged into another person (`linkedTo`).
   */
  readonly refused?: "erased" | "self" | "linked";
  readonly linkedTo?: string;
  /**
   * The source had been handed over to this same target before (a retried identify): nothing moved
   * now, but the caller finishes what the first attempt may have left undone (profiles, experiments).
   */
  readonly handedOver?: boolean;
  /** Experiments the source was assigned to: its exposure rows there are re-keyed to the target. */
  readonly experiments?: readonly string[];
}

/** A one-time identity token, offered to the person's object: first use, a replay, or an erased person. */
export type TokenSpend = "spent" | "replayed" | "erased";

/** A token bucket per visitor: a flooding client is slowed down without starving other visitors. */
export const RATE_PER_SECOND = 20;
export const BURST = 200;
export const DEAD_LETTER_LIMIT = 100;
export const IDLE_DELETE_MS = 400 * 86400e3;
const DAY_MS = 86400e3;
/** Events older than this are refused at the door (LIMITS.pastMs in src/http/events.ts). */
const ACCEPT_WINDOW_MS = 7 * DAY_MS;
const PAGE_VIEW_FLUSH_MS = 1000;

/**
 * A visitor's object as its callers (and other visitors' objects) see it over Workers RPC. Typed by
 * hand because the derived stub type maps any method whose arguments or result hold `unknown`
 * (event properties and traits are arbitrary JSON) to `never`.
 */
export interface VisitorObject {
  ingest(visitorId: string, events: readonly VisitorEvent[], options: IngestOptions): Promise<IngestResult>;
  snapshot(options: SnapshotOptions): Promise<VisitorState>;
  recordDecision(options: DecisionRecord): Promise<boolean>;
  setConsent(
    consent: Readonly<Record<string, boolean>>,
    options?: { visitorId?: string; now?: Millis; forwarded?: boolean },
  ): Promise<Consent>;
  exportAll(): Promise<VisitorDump | null>;
  forwardingAddress(): Promise<string | null>;
  handOver(target: string, mergeId: string, now: Millis): Promise<MergeResult>;
  heldPrivacy(options?: { forwarded?: boolean }): Promise<{ consent: Consent; erased: boolean }>;
  mergeFrom(
    source: VisitorDump,
    mergeId: string,
    options: { now: Millis; visitorId?: string; forwarded?: boolean },
  ): Promise<MergeResult>;
  erase(): Promise<void>;
  spendIdentityToken(tokenId: string, expiresAt: Millis, now: Millis): Promise<TokenSpend>;
}

/** The object of one canonical visitor id. */
export function visitorObject(env: Pick<Env, "VISITOR">, visitorId: string): VisitorObject {
  // The stub has exactly these methods (VisitorDO's public surface); only its derived type is lost.
  return env.VISITOR.get(env.VISITOR.idFromName(visitorId)) as unknown as VisitorObject;
}

/** The experiments a handed-over history carried (meta `handedExperiments`), as written by handOver. */
const ExperimentIdsSchema = z.array(z.string());

type EventRow = { id: string; ts: number; type: string; channel: string; props: string };

export class VisitorDO extends DurableObject<Env> implements VisitorObject {
  private readonly sql: SqlStorage;
  private state: MutableVisitorState = emptyState("");
  private consent: Record<string, boolean> = {};
  private erased = false;
  private mergedInto: string | null = null;
  /** When this object handed its history over (real clock). */
  private mergedAt = 0;
  private mergedFrom: string[] = [];
  /** When consent was last set: a visitor who only answered a consent banner is active too. */
  private consentAt = 0;
  private tokens = BURST;
  private refilledAt = 0;
  private alarmChecked = false;
  private pendingViews: VisitorEvent[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  /** The event log's bounds: EVENT_LOG_MAX and EVENT_LOG_MAX_AGE_DAYS from the vars, or defaults. */
  private readonly limits: StateLimits;
  /** How long event ids are remembered: the acceptance window or the kept log, and a day's margin. */
  private readonly seenRetentionMs: Millis;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // A bad bound is named by the configuration (once per isolate, on /_ns/health) and the default kept.
    const { config } = readConfig(env);
    const limits = stateLimits({
      maxEvents: config.EVENT_LOG_MAX,
      maxEventAgeDays: config.EVENT_LOG_MAX_AGE_DAYS,
    });
    this.limits = limits;
    this.seenRetentionMs = Math.max(limits.maxEventAgeMs, ACCEPT_WINDOW_MS) + DAY_MS;
    void ctx.blockConcurrencyWhile(async () => {
      this.createTables();
      this.load();
    });
  }

  private createTables(): void {
    this.sql.exec(`CREATE TABLE IF NOT EXISTS event (
      id TEXT PRIMARY KEY, ts INTEGER NOT NULL, type TEXT NOT NULL, channel TEXT NOT NULL, props TEXT NOT NULL)`);
    this.sql.exec("CREATE INDEX IF NOT EXISTS event_ts ON event (ts)");
    this.sql.exec("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, ts INTEGER NOT NULL)");
    this.sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS dead_letter (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, reason TEXT NOT NULL, raw TEXT NOT NULL)",
    );
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
      .exec<EventRow>("SELECT id, ts, type, channel, props FROM event ORDER BY ts, id")
      .toArray()
      .map((r) => ({ id: r.id, ts: r.ts, type: r.type, channel: r.channel, props: JSON.parse(r.props) }));
    this.consent = JSON.parse(meta.get("consent") ?? "{}");
    this.erased = meta.get("erased") === "1";
    this.mergedInto = meta.get("mergedInto") ?? null;
    this.mergedFrom = JSON.parse(meta.get("mergedFrom") ?? "[]");
    this.consentAt = Number(meta.get("consentAt") ?? 0);
    this.mergedAt = Number(meta.get("mergedAt") ?? 0);
  }

  private setMeta(key: string, value: string): void {
    this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", key, value);
  }

  private saveState(): void {
    // Events live in their own table; the rest is small and written whole.
    const { events: _events, ...rest } = this.state;
    this.setMeta("state", JSON.stringify(rest));
  }

  private ensureId(visitorId: string | undefined): void {
    if (visitorId && !this.state.visitorId) {
      this.state.visitorId = visitorId;
      this.setMeta("id", visitorId);
    }
  }

  private async scoring() {
    const rules = await activeRules(this.env);
    return rules?.compiled ?? null;
  }

  /** The object this one was merged into, when a call should go there instead. */
  private forwardTarget(forwarded: boolean | undefined): VisitorObject | null {
    if (!this.mergedInto || forwarded) return null;
    return visitorObject(this.env, this.mergedInto);
  }

  private takeTokens(n: number, now: Millis): number {
    const elapsed = Math.max(0, now - this.refilledAt) / 1000;
    this.tokens = Math.min(BURST, this.tokens + elapsed * RATE_PER_SECOND);
    this.refilledAt = Math.max(this.refilledAt, now);
    if (this.tokens >= n) {
      this.tokens -= n;
      return 0;
    }
    return Math.max(1, Math.ceil((n - this.tokens) / RATE_PER_SECOND));
  }

  /**
   * Stores new events (an id seen before is counted as a duplicate, never applied twice) and the
   * batch's rejected events as dead letters. The answer is sent after the writes are durable.
   */
  async ingest(
    visitorId: string,
    events: readonly VisitorEvent[],
    options: IngestOptions,
  ): Promise<IngestResult> {
    if (this.erased) return { status: "suppressed" };
    const target = this.forwardTarget(options.forwarded);
    if (target) return target.ingest(this.mergedInto!, events, { ...options, forwarded: true });
    // Without consent nothing about the visitor is kept, rejected events included.
    const privacy = this.privacy(options);
    if (!privacy.keep) return { status: "no_consent" };
    const retryAfterSeconds = this.takeTokens(events.length, options.now);
    if (retryAfterSeconds > 0) return { status: "rate_limited", retryAfterSeconds };
    for (const r of options.rejected ?? []) this.deadLetter(options.now, r.reason, r.raw);
    this.ensureId(visitorId);
    const scoring = await this.scoring();
    // Page views held in memory go with this write, so memory and storage agree before the batch
    // (what a rollback below falls back to).
    this.flushPageViews();
    const before = { ...this.state.conversions };
    let accepted = 0;
    let duplicates = 0;
    const failed: Array<{ id: string; reason: string }> = [];
    try {
      // An event's `seen` row, its log row and its effect on the aggregates commit together: the
      // whole batch in one transaction, the fast path.
      this.ctx.storage.transactionSync(() => {
        for (const e of events) {
          if (!this.storeEvent(e)) {
            duplicates++;
            continue;
          }
          applyEvent(this.state, e, scoring, this.limits);
          accepted++;
        }
        if (accepted > 0) this.pruneAndSave(options.now);
      });
    } catch {
      // Storage rolled back; memory may hold half an event: read it back from storage, then go event
      // by event, so one event that cannot be applied costs only itself. It is kept as a dead letter
      // with its `seen` row rolled back: never a "duplicate", a retry tries it again.
      this.load();
      accepted = 0;
      duplicates = 0;
      for (const e of events) {
        try {
          this.ctx.storage.transactionSync(() => {
            if (!this.storeEvent(e)) {
              duplicates++;
              return;
            }
            applyEvent(this.state, e, scoring, this.limits);
            this.pruneAndSave(options.now);
            accepted++;
          });
        } catch (err) {
          this.load();
          const reason = `not applied: ${err instanceof Error ? err.message : String(err)}`;
          failed.push({ id: e.id, reason });
          this.deadLetter(options.now, reason, JSON.stringify(e));
          log("error", "event_not_applied", { type: e.type, error: reason });
        }
      }
    }
    if (accepted > 0) void this.scheduleAlarm();
    const conversions: Array<{ experiment: string; variant: string; at: Millis }> = [];
    // A goal reached by someone who refused measurement is kept (it is their behaviour) but not counted.
    if (scoring && privacy.measure) {
      for (const exp of Object.values(scoring.experiments)) {
        const at = own(this.state.conversions, exp.goal);
        const variant = own(this.state.assignments, exp.id);
        if (at !== undefined && at !== before[exp.goal] && variant)
          conversions.push({ experiment: exp.id, variant, at });
      }
    }
    return { status: "stored", accepted, duplicates, failed, conversions };
  }

  /**
   * Writes a new event; false when its id was seen before (idempotency). The page views the proxy
   * records carry ids it just made (`pv:<uuid>`), never sent twice: they skip the idempotency row,
   * one write fewer on the most frequent event.
   */
  private storeEvent(e: VisitorEvent, remember = true): boolean {
    if (remember) {
      const fresh = this.sql
        .exec("INSERT INTO seen (id, ts) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING id", e.id, e.ts)
        .toArray();
      if (fresh.length === 0) return false;
    }
    this.sql.exec(
      "INSERT OR REPLACE INTO event (id, ts, type, channel, props) VALUES (?, ?, ?, ?, ?)",
      e.id,
      e.ts,
      e.type,
      e.channel,
      JSON.stringify(e.props),
    );
    return true;
  }

  private persistAfterApply(now: Millis): void {
    this.pruneAndSave(now);
    void this.scheduleAlarm();
  }

  /** Prunes memory and storage to the same bounds, then writes the aggregate row (no I/O awaited). */
  private pruneAndSave(now: Millis): void {
    const countBefore = this.state.events.length;
    prune(this.state, now, this.limits);
    if (this.state.events.length < countBefore) {
      const oldestKept = this.state.events[0]?.ts ?? now + 1;
      this.sql.exec("DELETE FROM event WHERE ts < ?", oldestKept);
      // Same-millisecond ties at the boundary: keep exactly the ids still in memory.
      const kept = new Set(this.state.events.map((e) => e.id));
      for (const row of this.sql
        .exec<{ id: string }>("SELECT id FROM event WHERE ts = ?", oldestKept)
        .toArray()) {
        if (!kept.has(row.id)) this.sql.exec("DELETE FROM event WHERE id = ?", row.id);
      }
    }
    this.saveState();
  }

  /**
   * Once per object lifetime: the daily upkeep alarm exists (the alarm re-arms itself). Alarms run
   * on the real clock, whatever time the caller simulated.
   */
  private async scheduleAlarm(): Promise<void> {
    if (this.alarmChecked) return;
    this.alarmChecked = true;
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + DAY_MS);
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

  /**
   * The one decision-path call: the state the engine needs, optionally recording this page view.
   * A hot object answers from memory, without reading storage.
   */
  async snapshot(options: SnapshotOptions): Promise<VisitorState> {
    const target = this.forwardTarget(options.forwarded);
    if (target) {
      return target.snapshot({ ...options, visitorId: this.mergedInto!, forwarded: true });
    }
    const pageView = options.pageView;
    if (pageView && this.privacy(options).keep) {
      this.ensureId(options.visitorId);
      // The page view counts in this decision at once (memory), and is written just after the
      // answer leaves, so the page never waits on a storage flush. A page view is not an
      // acknowledged event: losing one to a crash loses a view, never a 202.
      applyEvent(this.state, pageView, await this.scoring(), this.limits);
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

  private flushPageViews(): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const views = this.pendingViews;
    this.pendingViews = [];
    if (this.erased || views.length === 0) return;
    let stored = 0;
    for (const v of views) if (this.storeEvent(v, false)) stored++;
    if (stored > 0) this.persistAfterApply(Date.now());
  }

  /**
   * Exposures (frequency caps) and new experiment assignments (sticky: the first one stays). Answers
   * whether the decision may be counted in its experiments: the caller records exposures there only
   * on a yes, so an erased or unconsenting person is never counted, whatever the caller knew.
   */
  async recordDecision(options: DecisionRecord): Promise<boolean> {
    const target = this.forwardTarget(options.forwarded);
    if (target && !this.erased) return target.recordDecision({ ...options, forwarded: true });
    const privacy = this.privacy(options);
    if (!privacy.keep) return false;
    for (const x of options.exposures) recordExposure(this.state, x.experience, options.now, this.limits);
    for (const [experiment, variant] of Object.entries(options.assignments)) {
      const stored = Object.hasOwn(this.state.assignments, experiment)
        ? this.state.assignments[experiment]
        : undefined;
      if (stored === undefined || stored === options.replacing?.[experiment])
        this.state.assignments[experiment] = variant;
    }
    this.saveState();
    return privacy.measure;
  }

  private handedExperiments(): string[] {
    const row = this.sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'handedExperiments'")
      .toArray()[0];
    const parsed = ExperimentIdsSchema.safeParse(row ? JSON.parse(row.value) : []);
    return parsed.success ? parsed.data : [];
  }

  /**
   * What the privacy gate needs from this visitor: the consent they answered and whether they were
   * erased (a merged visitor answers with the person it was merged into).
   */
  async heldPrivacy(options: { forwarded?: boolean } = {}): Promise<{ consent: Consent; erased: boolean }> {
    const target = this.forwardTarget(options.forwarded);
    if (target && !this.erased) return target.heldPrivacy({ forwarded: true });
    return { consent: { ...this.consent }, erased: this.erased };
  }

  /** The privacy gate with what this object holds: its consent and whether it was erased. */
  private privacy(options: { readonly consentMode?: ConsentMode; readonly gpc?: boolean }): PrivacyVerdict {
    return privacyVerdict({
      mode: options.consentMode ?? "opt-out",
      gpc: options.gpc ?? false,
      consent: this.consent,
      erased: this.erased,
    });
  }

  /** Consent per purpose, merged into what is held; returns the consent now held. */
  async setConsent(
    consent: Readonly<Record<string, boolean>>,
    options: { visitorId?: string; now?: Millis; forwarded?: boolean } = {},
  ): Promise<Consent> {
    if (this.erased) return {};
    const target = this.forwardTarget(options.forwarded);
    if (target)
      return target.setConsent(consent, { ...options, visitorId: this.mergedInto!, forwarded: true });
    this.ensureId(options.visitorId);
    this.consent = { ...this.consent, ...consent };
    this.setMeta("consent", JSON.stringify(this.consent));
    this.consentAt = options.now ?? Date.now();
    this.setMeta("consentAt", String(this.consentAt));
    if (this.consent.personalization === false) this.forgetBehaviour();
    void this.scheduleAlarm();
    return this.consent;
  }

  /** Withdrawn personalization consent: the behaviour held so far goes too, consent stays. */
  private forgetBehaviour(): void {
    this.pendingViews = [];
    this.sql.exec("DELETE FROM event");
    this.sql.exec("DELETE FROM dead_letter");
    const id = this.state.visitorId;
    this.state = emptyState(id);
    this.saveState();
  }

  private dump(seenSince?: Millis): VisitorDump {
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
      ...(seenSince === undefined
        ? {}
        : {
            seen: this.sql
              .exec<{ id: string; ts: number }>("SELECT id, ts FROM seen WHERE ts >= ?", seenSince)
              .toArray()
              .map((r) => [r.id, r.ts] as const),
          }),
    };
  }

  /** Everything held (admin export); null when nothing is held here. */
  async exportAll(): Promise<VisitorDump | null> {
    if (this.erased || this.mergedInto) return null;
    if (!this.state.visitorId && this.state.events.length === 0 && Object.keys(this.consent).length === 0)
      return null;
    return this.dump();
  }

  /** Where this object's history went, if it was merged into a known person. */
  async forwardingAddress(): Promise<string | null> {
    return this.mergedInto;
  }

  /**
   * Stitching, on the anonymous visitor's object: hands everything held to `target` (the known
   * person's canonical id), then keeps only a forwarding address. Idempotent: a second call finds
   * the history already merged (the target remembers `mergeId`) and changes nothing.
   */
  async handOver(target: string, mergeId: string, now: Millis): Promise<MergeResult> {
    if (this.erased) return { merged: false, events: 0, refused: "erased" };
    if (target === this.state.visitorId || target === mergeId)
      return { merged: false, events: 0, refused: "self" };
    // Handed over already (a login on every page, or a retry): nothing moves; the experiments the
    // history carried are named again so a retry can finish re-keying them.
    if (this.mergedInto === target)
      return { merged: false, events: 0, handedOver: true, experiments: this.handedExperiments() };
    if (this.mergedInto) {
      // Already another person's: merging two known people is the caller's decision, not ours.
      return { merged: false, events: 0, refused: "linked", linkedTo: this.mergedInto };
    }
    this.flushPageViews();
    // Forward first: an event arriving while the history is in flight goes to the target too.
    const previous = this.mergedInto;
    this.mergedInto = target;
    this.setMeta("mergedInto", target);
    const stub = visitorObject(this.env, target);
    let result: MergeResult;
    try {
      result = await stub.mergeFrom(this.dump(now - this.seenRetentionMs), mergeId, {
        now,
        visitorId: target,
      });
    } catch (err) {
      this.mergedInto = previous;
      if (previous === null) this.sql.exec("DELETE FROM meta WHERE key = 'mergedInto'");
      throw err;
    }
    if (result.refused === "erased") {
      // The person was erased: this history is not theirs to receive; it stays here.
      this.mergedInto = previous;
      if (previous === null) this.sql.exec("DELETE FROM meta WHERE key = 'mergedInto'");
      return result;
    }
    // The history now lives with the target; keep only the forwarding address.
    this.pendingViews = [];
    this.sql.exec("DELETE FROM event");
    this.sql.exec("DELETE FROM seen");
    this.sql.exec("DELETE FROM dead_letter");
    this.sql.exec("DELETE FROM meta WHERE key NOT IN ('mergedInto', 'id')");
    this.setMeta("handedExperiments", JSON.stringify(result.experiments ?? []));
    this.state = emptyState(this.state.visitorId);
    this.consent = {};
    this.consentAt = 0;
    this.mergedFrom = [];
    // The forwarding address outlives the anonymous cookie (400 days), then goes.
    this.mergedAt = Date.now();
    this.setMeta("mergedAt", String(this.mergedAt));
    await this.ctx.storage.setAlarm(this.mergedAt + IDLE_DELETE_MS);
    this.alarmChecked = true;
    return result;
  }

  /**
   * Stitching, on the known person's object: folds another visitor's dump into this one
   * (see `mergeVisitorState`). Idempotent by merge id: merging twice changes nothing.
   */
  async mergeFrom(
    source: VisitorDump,
    mergeId: string,
    options: { now: Millis; visitorId?: string; forwarded?: boolean },
  ): Promise<MergeResult> {
    if (this.erased) return { merged: false, events: 0, refused: "erased" };
    const target = this.forwardTarget(options.forwarded);
    if (target) return target.mergeFrom(source, mergeId, { ...options, forwarded: true });
    if (this.mergedFrom.includes(mergeId)) return { merged: false, events: 0 };
    this.flushPageViews();
    this.ensureId(options.visitorId);
    const fresh: VisitorEvent[] = [];
    const duplicates: VisitorEvent[] = [];
    for (const e of source.state.events) (this.storeEvent(e) ? fresh : duplicates).push(e);
    for (const [id, ts] of source.seen ?? []) {
      this.sql.exec("INSERT INTO seen (id, ts) VALUES (?, ?) ON CONFLICT DO NOTHING", id, ts);
    }
    const scoring = await this.scoring();
    mergeVisitorState(
      this.state,
      source.state,
      fresh,
      duplicates,
      options.now,
      scoring?.dimensions ?? {},
      this.limits,
    );
    for (const d of source.deadLetters) this.deadLetter(d.at, d.reason, d.raw);
    // The known person's consent wins; the anonymous visitor's fills purposes it never answered.
    this.consent = { ...source.consent, ...this.consent };
    this.setMeta("consent", JSON.stringify(this.consent));
    this.mergedFrom.push(mergeId, ...source.mergedFrom.filter((m) => !this.mergedFrom.includes(m)));
    this.setMeta("mergedFrom", JSON.stringify(this.mergedFrom));
    this.persistAfterApply(options.now);
    return { merged: true, events: fresh.length, experiments: Object.keys(source.state.assignments) };
  }

  /**
   * One-time identity tokens, on the person's own object (src/http/identify.ts): records `tokenId`
   * as used until `expiresAt`; `replayed` when it was used already. Here rather than in KV because
   * KV is eventually consistent: two locations could both accept the same token. The check and the
   * write run without an await between them, and the answer leaves only once the write is durable.
   * Bounded: expired ids are pruned on every write (a token lives IDENTITY_TOKEN_MAX_TTL_SECONDS at most).
   */
  async spendIdentityToken(tokenId: string, expiresAt: Millis, now: Millis): Promise<TokenSpend> {
    // An erased person keeps only the tombstone; identify refuses them anyway.
    if (this.erased) return "erased";
    // Created here, not in createTables, so this stays one self-contained piece (and after a deleteAll).
    this.sql.exec("CREATE TABLE IF NOT EXISTS spent_token (id TEXT PRIMARY KEY, exp INTEGER NOT NULL)");
    this.sql.exec("DELETE FROM spent_token WHERE exp < ?", now);
    if (this.sql.exec("SELECT 1 FROM spent_token WHERE id = ?", tokenId).toArray().length > 0)
      return "replayed";
    this.sql.exec("INSERT INTO spent_token (id, exp) VALUES (?, ?)", tokenId, expiresAt);
    return "spent";
  }

  /** Erases everything held, and leaves a tombstone so later events for this person are refused. */
  async erase(): Promise<void> {
    this.pendingViews = [];
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    this.setMeta("erased", "1");
    this.state = emptyState("");
    this.consent = {};
    this.consentAt = 0;
    this.mergedFrom = [];
    this.mergedInto = null;
    this.erased = true;
  }

  /**
   * Daily upkeep: prune old events, counters and remembered ids. A visitor idle for 400 days (the
   * cookie's lifetime) and an old forwarding address are deleted whole.
   */
  override async alarm(): Promise<void> {
    const now = Date.now();
    if (this.erased) return;
    const lastActive = this.mergedInto ? this.mergedAt : Math.max(this.state.lastSeen ?? 0, this.consentAt);
    if (now - lastActive > IDLE_DELETE_MS) {
      await this.ctx.storage.deleteAll();
      this.state = emptyState("");
      this.consent = {};
      this.consentAt = 0;
      this.mergedInto = null;
      this.mergedAt = 0;
      this.mergedFrom = [];
      this.alarmChecked = false;
      this.createTables();
      return;
    }
    if (this.mergedInto) {
      await this.ctx.storage.setAlarm(this.mergedAt + IDLE_DELETE_MS);
      return;
    }
    this.sql.exec("DELETE FROM seen WHERE ts < ?", now - this.seenRetentionMs);
    this.persistAfterApply(now);
    await this.ctx.storage.setAlarm(now + DAY_MS);
  }
}
