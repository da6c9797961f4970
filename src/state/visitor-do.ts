import { DurableObject } from "cloudflare:workers";
import type { ConsentMode } from "../core/consent.ts";
import { goalsReached } from "../core/goals.ts";
import type { Consent, Millis, VisitorEvent } from "../core/model.ts";
import { pageState } from "../core/page-state.ts";
import { marketingAllowed, type PrivacyVerdict, privacyVerdict } from "../core/privacy.ts";
import {
  applyEvent,
  firstAfter,
  recordExposure,
  type StateLimits,
  stateLimits,
} from "../core/visitor-state.ts";
import { readConfig } from "../platform/config.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import type { CompiledRules } from "../rules/index.ts";
import { nextTraitChange, sameTraits } from "../rules/journey-traits.ts";
import { type Entry, entriesFor, instanceId, type LatestEntry } from "../rules/journey-triggers.ts";
import {
  dropExpired,
  enqueueExport,
  pendingExports,
  retryDelay,
  type SeqRange,
  sendOutbox,
} from "./export-outbox.ts";
import {
  deliveryRecord,
  type ExportRecord,
  eventRecord,
  messageRecord,
  shownRecords,
} from "./export-record.ts";
import { isKnownId } from "./identity.ts";
import {
  deleteMessages,
  foldMessages,
  journeyRecords,
  messageRows,
  recordOutcome,
  recordSent,
} from "./journey-messages.ts";
import {
  addLog,
  deleteJourneys,
  foldJourneys,
  insertEntry,
  insertSend,
  journeyRows,
  journeyViews,
  latestEntry,
  markDelivered,
  readEntry,
  readSend,
  runningEntries,
  type SendRow,
  sendsSince,
  updateEntry,
} from "./journey-store.ts";
import { forgetTables, transaction } from "./lazy-tables.ts";
import { activeRules } from "./rules-loader.ts";
import { recordDroppedWrite } from "./stored-value.ts";
import { lastHeldAt, nextUpkeepAt, type UpkeepBounds } from "./upkeep.ts";
import { applyBackfill } from "./visitor-backfill.ts";
import { applyBatch, type BatchHost, fullBucket, takeTokens } from "./visitor-ingest.ts";
import { dumpOf, foldDump, keepOnlyAddress, spendToken } from "./visitor-merge.ts";
import {
  type BackfillOptions,
  type BackfillResult,
  type DecisionRecord,
  type DeliveryReport,
  type FirstPageRecord,
  type Forwarding,
  type IngestOptions,
  type IngestResult,
  type JourneyFacts,
  type JourneyParams,
  type JourneyRecord,
  type JourneyView,
  type MergeResult,
  type SendRefusal,
  type SendRequest,
  type SendReservation,
  type SentMessage,
  type SnapshotOptions,
  type TokenSpend,
  type VisitorDump,
  type VisitorObject,
  type VisitorSnapshot,
  visitorObject,
} from "./visitor-object.ts";
import {
  ACCEPT_WINDOW_MS,
  addDeadLetter,
  createMetaTable,
  createTables,
  DAY_MS,
  deleteBehaviour,
  deleteMeta,
  emptyHeld,
  forgetSeenBefore,
  IDLE_DELETE_MS,
  loadHeld,
  oldestSeenAt,
  pruneAndSave,
  readHandedExperiments,
  saveConsent,
  saveJourneyTraits,
  saveState,
  setMeta,
  storeEvent,
} from "./visitor-store.ts";

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
 *
 * The contract callers see is src/state/visitor-object.ts; storage and retention live in
 * visitor-store.ts, the batch transaction and rate limit in visitor-ingest.ts, the backfill's
 * transaction in visitor-backfill.ts, the merge protocol in visitor-merge.ts. This class holds the memory and the order of the steps.
 */

/**
 * Write-behind: page views and decision records are held in memory and written together at most
 * once per this long per visitor (docs/decisions.md, record 13).
 */
export const WRITE_BEHIND_MS = 5000;

export class VisitorDO extends DurableObject<Env> implements VisitorObject {
  private readonly sql: SqlStorage;
  private held = emptyHeld();
  private readonly bucket = fullBucket();
  /**
   * When the one alarm is set to ring, as this object last set or read it (null: none; undefined:
   * not read in this lifetime). Lets a write move the alarm earlier without reading it every time.
   */
  private armedAt: Millis | null | undefined = undefined;
  /** The alarm's changes, one after another (changeAlarm). */
  private alarmChange: Promise<void> = Promise.resolve();
  /** Page views counted in memory, not yet written. */
  private pendingViews: VisitorEvent[] = [];
  /** The aggregate row (assignments, exposures) changed in memory since it was last written. */
  private stateDirty = false;
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  /** The event log's bounds: EVENT_LOG_MAX and EVENT_LOG_MAX_AGE_DAYS from the vars, or defaults. */
  private readonly limits: StateLimits;
  /**
   * How long event ids are remembered (by the event's time): the live acceptance window or the kept
   * log, which a backfill reaches back to, and a day's margin; an id older than that is refused anyway.
   */
  private readonly seenRetentionMs: Millis;
  /**
   * What the upkeep lets go and when (src/state/upkeep.ts): the log's bounds, the ids', and the idle
   * visitor's, a known person's (IDLE_DELETE_MS) or an anonymous visitor's (ANONYMOUS_IDLE_DAYS).
   */
  private readonly bounds: { readonly known: UpkeepBounds; readonly anonymous: UpkeepBounds };
  /** The outbox's sends, one after another: a row is never on its way twice at once. */
  private sending: Promise<void> = Promise.resolve();
  /** Sends the queue refused in a row: the alarm's backoff (export-outbox.ts). */
  private exportFailures = 0;
  /** When the upkeep is next due (real clock); 0: at the next alarm. */
  private upkeepDueAt: Millis = 0;
  /** Set while erase() runs: the outbox is going, nothing more is read from it or sent. */
  private erasing = false;
  /**
   * Set while handOver() waits for the person's object to take the history: a journey step asking
   * meanwhile waits for it, so it is answered where its entry is (src/state/visitor-object.ts).
   */
  private handingOver: Promise<unknown> | null = null;

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
    const kept = { ...limits, seenRetentionMs: this.seenRetentionMs };
    this.bounds = {
      known: { ...kept, idleMs: IDLE_DELETE_MS },
      anonymous: { ...kept, idleMs: config.ANONYMOUS_IDLE_DAYS * DAY_MS },
    };
    void ctx.blockConcurrencyWhile(async () => {
      // Only the tables every visitor writes: the rest are created by their first write (lazy-tables.ts).
      createTables(this.sql);
      this.load();
    });
  }

  private load(): void {
    this.held = loadHeld(this.sql);
  }

  /** One storage transaction; a rollback also undoes the tables it created (lazy-tables.ts). */
  private transaction<T>(run: () => T): T {
    return transaction(this.ctx.storage, this.sql, run);
  }

  private ensureId(visitorId: string | undefined): void {
    if (visitorId && !this.held.state.visitorId) {
      this.held.state.visitorId = visitorId;
      setMeta(this.sql, "id", visitorId);
    }
  }

  private async scoring(): Promise<CompiledRules | null> {
    const rules = await activeRules(this.env);
    return rules?.compiled ?? null;
  }

  /** The object this one was merged into, when a call should go there instead. */
  private forwardTarget(forwarded: boolean | undefined): VisitorObject | null {
    if (!this.held.mergedInto || forwarded) return null;
    return visitorObject(this.env, this.held.mergedInto);
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
    if (this.held.erased) return { status: "suppressed" };
    const target = this.forwardTarget(options.forwarded);
    if (target) return target.ingest(this.held.mergedInto!, events, { ...options, forwarded: true });
    // Without consent nothing about the visitor is kept, rejected events included.
    const privacy = this.privacy(options);
    if (!privacy.keep) return { status: "no_consent" };
    const retryAfterSeconds = takeTokens(this.bucket, events.length, options.now);
    if (retryAfterSeconds > 0) return { status: "rate_limited", retryAfterSeconds };
    for (const rejected of options.rejected ?? [])
      addDeadLetter(this.sql, { at: options.now, reason: rejected.reason, raw: rejected.raw });
    this.ensureId(visitorId);
    const scoring = await this.scoring();
    // What is held in memory goes with this write, so memory and storage agree before the batch
    // (what a rollback falls back to).
    this.flushPending();
    const assignedFirst = this.keepFirstPageAssignments(options.firstPage);
    const firstPage = options.firstPage;
    // The first page's exposure lines ride in the batch's outbox row, with its page view: one row
    // and one queue message for the beacon's first call (record 28).
    const batch = this.batchHost(privacy.measure, () =>
      firstPage
        ? shownRecords(this.exportId(), options.now, firstPage.exposures, firstPage.rulesVersion)
        : [],
    );
    const outcome = applyBatch(batch.host, events, scoring, options.now);
    if (outcome.accepted > 0) {
      // The batch saved the whole state it holds (the first page's assignments included): nothing
      // is left for the write-behind flush to write again.
      this.stateDirty = false;
      this.keepUpkeepArmed();
    }
    if (firstPage && outcome.accepted > 0) this.keepFirstPageCaps(firstPage, options.now);
    if (scoring && outcome.stored.length > 0) this.journeysAfterIngest(scoring, outcome.stored, options.now);
    // A goal reached by someone who refused measurement is kept (it is their behaviour) but not counted.
    const conversions =
      scoring && privacy.measure ? goalsReached(this.held.state.assignments, outcome.stored, scoring) : [];
    // Stored and queued (the transaction committed): sent after the answer leaves.
    this.sendSoon(batch.queued());
    const { stored: _stored, ...counts } = outcome;
    return {
      status: "stored",
      ...counts,
      conversions,
      firstPageCounted: assignedFirst && outcome.accepted > 0 && privacy.measure,
    };
  }

  /** The id the export names this visitor by: the canonical id the object was made for. */
  private exportId(): string {
    // An object called without its id yet (empty) is still named: by its object id.
    return this.held.state.visitorId || this.ctx.id.toString();
  }

  /** Sends the rows just queued, off the response's path; what the queue refuses waits for the alarm. */
  private sendSoon(range: SeqRange | null): void {
    if (range) this.ctx.waitUntil(this.sendQueued(range));
  }

  /**
   * Sends the outbox's rows (those of `range`, or all), after any send already under way. A refused
   * send arms the alarm (backoff); the rows stay until the queue accepts them.
   */
  private sendQueued(range: SeqRange | null): Promise<void> {
    const run = this.sending.then(async () => {
      let sent = false;
      try {
        sent = await sendOutbox(this.sql, this.env, range, () => this.held.erased || this.erasing);
      } catch (err) {
        recordDroppedWrite("export_outbox_not_read", err);
      }
      if (sent) {
        this.exportFailures = 0;
        return;
      }
      this.exportFailures++;
      await this.alarmNoLaterThan(Date.now() + retryDelay(this.exportFailures)).catch((err: unknown) =>
        recordDroppedWrite("export_retry_not_armed", err),
      );
    });
    this.sending = run;
    return run;
  }

  /**
   * The one alarm serves the upkeep and the outbox's retries: either may move it earlier,
   * neither later; the alarm itself sets the next one (the sooner of what each needs).
   */
  private alarmNoLaterThan(at: Millis): Promise<void> {
    return this.changeAlarm(at, "earlier");
  }

  /**
   * Sets the one alarm to `at` ("exactly"), or to `at` if that is sooner than the one set ("earlier"),
   * and remembers when it rings (unknown again if the write failed). One change at a time: two
   * writes of one batch (the upkeep, a journey check) must not both read "none set" and the later
   * time win.
   */
  private changeAlarm(at: Millis, change: "earlier" | "exactly"): Promise<void> {
    const run = this.alarmChange
      .catch(() => undefined)
      .then(async () => {
        if (this.held.erased || this.erasing) return;
        if (change === "earlier") {
          if (this.armedAt === undefined) this.armedAt = await this.ctx.storage.getAlarm();
          if (this.armedAt !== null && this.armedAt <= at) return;
        }
        try {
          await this.ctx.storage.setAlarm(at);
          this.armedAt = at;
        } catch (err) {
          this.armedAt = undefined;
          throw err;
        }
      });
    this.alarmChange = run;
    return run;
  }

  /** `at`, or the outbox's next retry when rows wait and it comes sooner. */
  private soonerForOutbox(at: Millis, now: Millis): Millis {
    if (pendingExports(this.sql) === 0) return at;
    return Math.min(at, now + retryDelay(Math.max(1, this.exportFailures)));
  }

  /**
   * What a batch (live or backfilled) needs of this object: its storage, bounds and memory, and the
   * outbox its stored events' export lines go into inside the batch's own transaction (measured
   * visitors only), so stored and queued for export commit together. `queued()` is the outbox range
   * the batch wrote, to send once the answer has left.
   */
  private batchHost(
    measure: boolean,
    alongside: () => readonly ExportRecord[] = () => [],
  ): { host: BatchHost; queued: () => SeqRange | null } {
    let queued: SeqRange | null = null;
    let alongsideQueued = false;
    const host: BatchHost = {
      transaction: (run) => this.transaction(run),
      sql: this.sql,
      limits: this.limits,
      state: () => this.held.state,
      reload: () => this.load(),
      keepForExport: (stored) => {
        if (!measure) return;
        const id = this.exportId();
        const records: ExportRecord[] = stored.map((event) => eventRecord(id, event));
        // With the first events stored, once (a batch that falls back to one event at a time calls this per event).
        if (records.length > 0 && !alongsideQueued) {
          alongsideQueued = true;
          records.push(...alongside());
        }
        const range = enqueueExport(this.sql, records, Date.now());
        queued =
          range && queued ? { from: Math.min(queued.from, range.from), to: range.to } : (range ?? queued);
      },
    };
    return { host, queued: () => queued };
  }

  /**
   * Older history, in any time order (a server-side backfill): stored and folded in as if it had
   * arrived live in time order, in one transaction (src/state/visitor-backfill.ts). Idempotent by
   * event id, like `ingest`. Not held to the per-visitor token bucket: it comes from the site's own
   * servers, with a key limited per request (src/http/limits.ts), and is history, not a flood.
   */
  async backfill(
    visitorId: string,
    events: readonly VisitorEvent[],
    options: BackfillOptions,
  ): Promise<BackfillResult> {
    if (this.held.erased) return { status: "suppressed" };
    const target = this.forwardTarget(options.forwarded);
    if (target) return target.backfill(this.held.mergedInto!, events, { ...options, forwarded: true });
    const privacy = this.privacy(options);
    if (!privacy.keep)
      return { status: "not_recorded", reason: privacy.blocked === "gpc" ? "gpc" : "consent" };
    this.ensureId(visitorId);
    const scoring = await this.scoring();
    // What is held in memory (page views written behind) goes first, so the replay sees the whole
    // log and memory and storage agree before the transaction (what a rollback falls back to).
    this.flushPending();
    const batch = this.batchHost(privacy.measure);
    const lines = applyBackfill(batch.host, events, scoring, options.now);
    const stored = events.filter((_event, index) => lines[index]!.status === "accepted");
    if (stored.length > 0) this.keepUpkeepArmed();
    // Counted in experiments as live conversions are: once, and only after the exposure.
    const conversions =
      scoring && privacy.measure ? goalsReached(this.held.state.assignments, stored, scoring) : [];
    // Stored and queued with the transaction: out to the export like live events, after the answer.
    this.sendSoon(batch.queued());
    return { status: "stored", lines, conversions };
  }

  private persistAfterApply(now: Millis): void {
    pruneAndSave(this.sql, this.held.state, now, this.limits);
    this.keepUpkeepArmed();
  }

  /** This visitor's upkeep bounds: whether they are a known person is read from their id. */
  private upkeepBounds(): UpkeepBounds {
    return isKnownId(this.held.state.visitorId) ? this.bounds.known : this.bounds.anonymous;
  }

  /**
   * After a write: the alarm rings by the time what is held first has upkeep due (src/state/upkeep.ts),
   * moved earlier only when this write brings that time forward (new data expires after old data, so
   * most writes change nothing and cost no storage call). Off the response's path; a failure is
   * logged and counted, never silent. Alarms run on the real clock, whatever time the caller simulated.
   */
  private keepUpkeepArmed(): void {
    const due = nextUpkeepAt(this.held, this.upkeepBounds(), null, Date.now());
    if (this.armedAt !== undefined && this.armedAt !== null && this.armedAt <= due) return;
    this.alarmNoLaterThan(due).catch((err: unknown) => recordDroppedWrite("upkeep_alarm_not_armed", err));
  }

  /**
   * The one decision-path call: the state the engine needs, optionally recording this page view.
   * A hot object answers from memory, without reading storage.
   */
  async snapshot(options: SnapshotOptions): Promise<VisitorSnapshot> {
    const target = this.forwardTarget(options.forwarded);
    if (target) {
      return target.snapshot({ ...options, visitorId: this.held.mergedInto!, forwarded: true });
    }
    const pageView = options.pageView;
    const privacy = this.privacy(options);
    if (pageView && privacy.keep) await this.countPageView(pageView, options.visitorId);
    // An erased person's page is decided from nothing, and the caller exports nothing of it.
    if (this.held.erased) return { ...this.held.state, erased: true };
    const held = this.held.state;
    // The view's export line leaves from the worker, with the page's exposures (record 23): the
    // object says whether its gate lets it be measured, the worker's gate must allow it too.
    const state: VisitorSnapshot =
      pageView && privacy.keep && privacy.measure ? { ...held, pageViewMeasured: true } : held;
    const since = options.eventsSince;
    // What crosses the RPC boundary is copied: a page gets only what its placements read (record 29).
    if (options.reads) {
      const read = pageState(held, options.now, since ?? Number.NEGATIVE_INFINITY, options.reads);
      return state === held ? read : { ...read, pageViewMeasured: true };
    }
    if (since === undefined || since <= (held.events[0]?.ts ?? Number.POSITIVE_INFINITY)) return state;
    // The decide API: only the part of the log the rules read.
    return { ...state, events: held.events.slice(firstAfter(held.events, since)) };
  }

  /**
   * The page view counts in this decision at once (memory), and is written behind the answer, so
   * the page never waits on a storage flush. A page view is not an acknowledged event: losing one
   * to a crash loses a view, never a 202. So it has no outbox row either: its export line is sent by
   * the worker (docs/decisions.md, record 23).
   */
  private async countPageView(pageView: VisitorEvent, visitorId: string | undefined): Promise<void> {
    this.ensureId(visitorId);
    applyEvent(this.held.state, pageView, await this.scoring(), this.limits);
    this.pendingViews.push(pageView);
    this.writeBehind();
  }

  /**
   * Arms the one write-behind timer: what is held in memory is written WRITE_BEHIND_MS after the
   * first change, one storage write for a burst of pages instead of one per page. A pending timer
   * keeps the object from being evicted (compatibility date 2026-10-01 or later), every other
   * write and the alarm flush first, so what is lost is only what a crash or a restart (a deploy)
   * takes within those seconds.
   */
  private writeBehind(): void {
    this.flushTimer ??= setTimeout(() => this.flushPendingLogged(), WRITE_BEHIND_MS);
  }

  /** The timer's flush: nobody awaits it, so a failure is logged and counted here. */
  private flushPendingLogged(): void {
    try {
      this.flushPending();
    } catch (err) {
      recordDroppedWrite("page_views_not_flushed", err);
    }
  }

  /** Writes what memory holds and storage does not yet: page views, then the aggregate row. */
  private flushPending(): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const views = this.pendingViews;
    const dirty = this.stateDirty;
    this.pendingViews = [];
    this.stateDirty = false;
    if (this.held.erased || (views.length === 0 && !dirty)) return;
    const now = Date.now();
    let written = 0;
    // The views and the aggregates commit together; the views' export lines left from the worker.
    this.transaction(() => {
      for (const view of views) if (storeEvent(this.sql, view, null)) written++;
      if (written > 0) pruneAndSave(this.sql, this.held.state, now, this.limits);
      else if (dirty) saveState(this.sql, this.held.state);
    });
    if (written > 0) this.keepUpkeepArmed();
  }

  /**
   * Exposures (frequency caps) and new experiment assignments (sticky: the first one stays). Answers
   * whether the decision may be counted in its experiments: the caller records exposures there only
   * on a yes, so an erased or unconsenting person is never counted, whatever the caller knew. What
   * was shown goes to the export from the caller, not from here: a page that stores nothing makes
   * no call at all (docs/decisions.md, record 17).
   */
  async recordDecision(options: DecisionRecord): Promise<boolean> {
    const target = this.forwardTarget(options.forwarded);
    if (target && !this.held.erased)
      return target.recordDecision({ ...options, visitorId: this.held.mergedInto!, forwarded: true });
    const privacy = this.privacy(options);
    if (!privacy.keep) return false;
    this.ensureId(options.visitorId);
    const assigned = this.keepAssignments(options.assignments, options.replacing);
    const capped = this.keepCappedExposures(options.exposures, options.now);
    // Written behind, with the page's view: later calls read memory, so they see it at once.
    if (capped || assigned) {
      this.stateDirty = true;
      this.writeBehind();
    }
    return privacy.measure;
  }

  /** New experiment assignments, sticky (the first one stays); whether any was given. */
  private keepAssignments(
    assignments: Readonly<Record<string, string>>,
    replacing: Readonly<Record<string, string>> | undefined,
  ): boolean {
    const state = this.held.state;
    const assigned = Object.entries(assignments);
    for (const [experiment, variant] of assigned) {
      const stored = Object.hasOwn(state.assignments, experiment) ? state.assignments[experiment] : undefined;
      if (stored === undefined || stored === replacing?.[experiment]) state.assignments[experiment] = variant;
    }
    return assigned.length > 0;
  }

  /** Only capped experiences need their exposures stored (frequency caps count them). */
  private keepCappedExposures(
    exposures: ReadonlyArray<{ readonly experience: string; readonly capped?: boolean }>,
    now: Millis,
  ): boolean {
    const capped = exposures.filter((exposure) => exposure.capped !== false);
    for (const exposure of capped) recordExposure(this.held.state, exposure.experience, now, this.limits);
    return capped.length > 0;
  }

  /**
   * A new visitor's first page, with the beacon's first call (docs/decisions.md, record 12): its
   * assignments before the batch (so a goal reached in the same batch is counted in its arm; sticky,
   * so a resent batch changes nothing), its capped exposures and export lines only when the batch
   * stored something new (a resent batch is not a second page). Answers whether its experiments
   * may count the visitor.
   */
  private keepFirstPageAssignments(first: FirstPageRecord | undefined): boolean {
    if (first === undefined || !this.keepAssignments(first.assignments, undefined)) return false;
    // Saved with the batch's own write when it stores something, else behind.
    this.stateDirty = true;
    this.writeBehind();
    return true;
  }

  /** The first page's capped exposures, written behind (its export lines went with the batch's). */
  private keepFirstPageCaps(first: FirstPageRecord, now: Millis): void {
    if (this.keepCappedExposures(first.exposures, now)) {
      this.stateDirty = true;
      this.writeBehind();
    }
  }

  /**
   * What the privacy gate needs from this visitor: the consent they answered and whether they were
   * erased (a merged visitor answers with the person it was merged into).
   */
  async heldPrivacy(options: { forwarded?: boolean } = {}): Promise<{ consent: Consent; erased: boolean }> {
    const target = this.forwardTarget(options.forwarded);
    if (target && !this.held.erased) return target.heldPrivacy({ forwarded: true });
    return { consent: { ...this.held.consent }, erased: this.held.erased };
  }

  /** The privacy gate with what this object holds: its consent and whether it was erased. */
  private privacy(options: { readonly consentMode?: ConsentMode; readonly gpc?: boolean }): PrivacyVerdict {
    return privacyVerdict({
      mode: options.consentMode ?? "opt-out",
      gpc: options.gpc ?? false,
      consent: this.held.consent,
      erased: this.held.erased,
    });
  }

  /** Consent per purpose, merged into what is held; returns the consent now held. */
  async setConsent(
    consent: Readonly<Record<string, boolean>>,
    options: { visitorId?: string; now?: Millis; forwarded?: boolean } = {},
  ): Promise<Consent> {
    if (this.held.erased) return {};
    const target = this.forwardTarget(options.forwarded);
    if (target)
      return target.setConsent(consent, { ...options, visitorId: this.held.mergedInto!, forwarded: true });
    this.ensureId(options.visitorId);
    this.flushPending();
    this.held.consent = { ...this.held.consent, ...consent };
    saveConsent(this.sql, this.held.consent);
    this.held.consentAt = options.now ?? Date.now();
    setMeta(this.sql, "consentAt", String(this.held.consentAt));
    if (this.held.consent.personalization === false) this.forgetBehaviour(this.held.consentAt);
    this.keepUpkeepArmed();
    return this.held.consent;
  }

  /** Withdrawn personalization consent: the behaviour held so far goes too, consent stays. */
  private forgetBehaviour(now: Millis): void {
    this.pendingViews = [];
    this.stateDirty = false;
    deleteBehaviour(this.sql, this.held.state.events, now, this.limits);
    // Journeys read behaviour: their entries go too, and each instance ends at its next step.
    deleteJourneys(this.sql);
    deleteMessages(this.sql);
    // The traits kept for them too (the profile in KV is the CRM's, and stays).
    deleteMeta(this.sql, "journeyTraits");
    this.held.traits = emptyHeld().traits;
    this.held.state = emptyHeld(this.held.state.visitorId).state;
    saveState(this.sql, this.held.state);
  }

  /** Everything held (admin export); null when nothing is held here. */
  async exportAll(): Promise<VisitorDump | null> {
    const { state, consent, erased, mergedInto } = this.held;
    if (erased || mergedInto) return null;
    if (!state.visitorId && state.events.length === 0 && Object.keys(consent).length === 0) return null;
    return dumpOf(this.sql, this.held);
  }

  /**
   * Where this object's history went, if it was merged into a known person; asked during a
   * hand-over, answered once it is done (the history is there, or the address withdrawn).
   */
  async forwardingAddress(): Promise<string | null> {
    await this.handOverSettled();
    return this.held.mergedInto;
  }

  /**
   * Stitching, on the anonymous visitor's object: hands everything held to `target` (the known
   * person's canonical id), then keeps only a forwarding address. Idempotent: a second call finds
   * the history already merged (the target remembers `mergeId`) and changes nothing.
   */
  async handOver(target: string, mergeId: string, now: Millis): Promise<MergeResult> {
    const refusal = this.handOverRefusal(target, mergeId);
    if (refusal) return refusal;
    this.flushPending();
    // Forward first: an event arriving while the history is in flight goes to the target too.
    this.held.mergedInto = target;
    setMeta(this.sql, "mergedInto", target);
    let result: MergeResult;
    // The journeys go with the history: their entries, messages and logs are the person's now.
    const handing = visitorObject(this.env, target).mergeFrom(
      {
        ...dumpOf(this.sql, this.held, now - this.seenRetentionMs),
        journeys: journeyRows(this.sql),
        journeyMessages: messageRows(this.sql),
      },
      mergeId,
      { now, visitorId: target },
    );
    this.handingOver = handing;
    try {
      result = await handing;
    } catch (err) {
      this.withdrawAddress();
      throw err;
    } finally {
      this.handingOver = null;
    }
    if (result.refused === "erased") {
      // The person was erased: this history is not theirs to receive; it stays here.
      this.withdrawAddress();
      return result;
    }
    // The history now lives with the target; keep only the forwarding address, which outlives the
    // anonymous cookie (400 days), then goes.
    this.pendingViews = [];
    this.stateDirty = false;
    keepOnlyAddress(this.sql, this.held, result.experiments ?? [], Date.now());
    deleteJourneys(this.sql);
    deleteMessages(this.sql);
    // The outbox stays: its lines were acknowledged under this id and still go out.
    await this.changeAlarm(this.soonerForOutbox(this.held.mergedAt + IDLE_DELETE_MS, Date.now()), "exactly");
    return result;
  }

  /** Why `handOver` moves nothing: an erased or self merge, or a history handed over already. */
  private handOverRefusal(target: string, mergeId: string): MergeResult | null {
    const { erased, mergedInto, state } = this.held;
    if (erased) return { merged: false, events: 0, refused: "erased" };
    if (target === state.visitorId || target === mergeId)
      return { merged: false, events: 0, refused: "self" };
    // Handed over already (a login on every page, or a retry): nothing moves; the experiments the
    // history carried are named again so a retry can finish re-keying them.
    if (mergedInto === target)
      return { merged: false, events: 0, handedOver: true, experiments: readHandedExperiments(this.sql) };
    // Already another person's: merging two known people is the caller's decision, not ours.
    if (mergedInto) return { merged: false, events: 0, refused: "linked", linkedTo: mergedInto };
    return null;
  }

  /** A hand-over that did not happen: no forwarding address (handOver sets one only when there was none). */
  private withdrawAddress(): void {
    this.held.mergedInto = null;
    deleteMeta(this.sql, "mergedInto");
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
    if (this.held.erased) return { merged: false, events: 0, refused: "erased" };
    const target = this.forwardTarget(options.forwarded);
    if (target) return target.mergeFrom(source, mergeId, { ...options, forwarded: true });
    if (this.held.mergedFrom.includes(mergeId)) return { merged: false, events: 0 };
    this.flushPending();
    this.ensureId(options.visitorId);
    const events = foldDump(this.sql, this.held, source, mergeId, {
      now: options.now,
      scoring: await this.scoring(),
      limits: this.limits,
    });
    // The visitor's journeys go on as the person's; a duplicate of one the person runs is stopped.
    const duplicates = source.journeys
      ? foldJourneys(this.sql, source.journeys, source.visitorId || mergeId, options.now)
      : [];
    if (source.journeyMessages) foldMessages(this.sql, source.journeyMessages);
    if (duplicates.length) this.ctx.waitUntil(this.stopInstances(duplicates));
    this.persistAfterApply(options.now);
    return { merged: true, events, experiments: Object.keys(source.state.assignments) };
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
    if (this.held.erased) return "erased";
    return spendToken(this.sql, tokenId, expiresAt, now);
  }

  /**
   * Erases everything held, and leaves a tombstone so later events for this person are refused.
   * The outbox goes too: the person's unsent event and exposure lines are never sent (the erasure
   * line itself is sent by the erasure route, which answers 503 until the queue took it).
   */
  async erase(): Promise<void> {
    this.erasing = true;
    try {
      // The person's journeys end with them: each instance is stopped (its steps would find the
      // tombstone and end anyway, sending nothing).
      const running = this.held.erased ? [] : runningEntries(this.sql).map((entry) => entry.instance);
      if (running.length) this.ctx.waitUntil(this.stopInstances(running));
      this.pendingViews = [];
      this.stateDirty = false;
      if (this.flushTimer !== null) clearTimeout(this.flushTimer);
      this.flushTimer = null;
      await this.ctx.storage.deleteAlarm();
      this.armedAt = null;
      await this.ctx.storage.deleteAll();
      forgetTables(this.sql);
      createMetaTable(this.sql);
      setMeta(this.sql, "erased", "1");
      this.held = { ...emptyHeld(), erased: true };
    } finally {
      // A failed erasure (answered 503, retried) must not leave the outbox stopped.
      this.erasing = false;
    }
  }

  /**
   * The one alarm. The outbox: lines older than its bound go (counted), the rest are sent, and a
   * refusal brings the alarm back sooner (backoff). Upkeep, when something held reaches its bound
   * (src/state/upkeep.ts; at most daily): prune old events, counters and remembered ids. A visitor
   * idle for 400 days (the cookie's lifetime) and an old forwarding address are deleted whole.
   */
  override async alarm(): Promise<void> {
    // It rang: none is set until this sets the next one.
    this.armedAt = null;
    // Whatever memory holds is written first (a no-op when nothing is pending).
    this.flushPending();
    const now = Date.now();
    const { erased, mergedInto, mergedAt } = this.held;
    if (erased) return;
    // Anything held that is recent keeps the visitor: a newsletter reader's history is brand sends
    // only (no lastSeen), and must not go as "idle" the day after it arrived or was backfilled.
    const lastActive = mergedInto ? mergedAt : lastHeldAt(this.held);
    if (now - lastActive > (mergedInto ? IDLE_DELETE_MS : this.upkeepBounds().idleMs)) {
      await this.ctx.storage.deleteAll();
      forgetTables(this.sql);
      this.held = emptyHeld();
      createTables(this.sql);
      return;
    }
    dropExpired(this.sql, now);
    await this.sendQueued(null);
    if (mergedInto) {
      await this.changeAlarm(this.soonerForOutbox(mergedAt + IDLE_DELETE_MS, now), "exactly");
      return;
    }
    // Woken early (the outbox, a journey check): the upkeep waits for its time (a new lifetime runs it
    // at once). Then the next is when the first thing held reaches its bound, not a day later.
    if (now >= this.upkeepDueAt) {
      forgetSeenBefore(this.sql, now - this.seenRetentionMs);
      pruneAndSave(this.sql, this.held.state, now, this.limits, true);
      this.upkeepDueAt = nextUpkeepAt(this.held, this.upkeepBounds(), oldestSeenAt(this.sql), now);
    }
    const scoring = await this.scoring();
    if (scoring) await this.checkJourneyTriggers(now);
    const next = Math.min(this.upkeepDueAt, this.nextJourneyCheck(scoring, now) ?? Number.POSITIVE_INFINITY);
    // "earlier": a write while this ran may have set a sooner one (none is set since it rang).
    await this.alarmNoLaterThan(this.soonerForOutbox(next, now));
  }

  // ---- Journeys (src/journeys/, docs/journeys.md) ----

  /** The deployment's consent mode: journeys run off any request, so the object reads it itself. */
  private marketing(channel?: string): boolean {
    return marketingAllowed(
      {
        mode: readConfig(this.env).config.CONSENT_MODE,
        gpc: false,
        consent: this.held.consent,
        erased: this.held.erased,
      },
      channel,
    );
  }

  /**
   * After a batch is stored: its events go to the running journeys that wait for them or end on them
   * (even without marketing consent: a purchase still ends a reminder), and, if the privacy gate allows
   * marketing, the journeys the batch triggers start. Off the answer's path: the 202 waits for neither.
   */
  private journeysAfterIngest(scoring: CompiledRules, fresh: readonly VisitorEvent[], now: Millis): void {
    const journeys = scoring.journeys;
    if (journeys.listens.size > 0 && fresh.some((event) => journeys.listens.has(event.type)))
      this.forwardEvents(scoring, fresh);
    if (journeys.triggerEvents.size === 0 && journeys.stateTriggered.length === 0) return;
    if (!this.marketing()) return;
    this.enter(
      entriesFor(scoring, fresh, this.held.state, this.latestEntry, now, "batch", this.held.traits.traits),
      now,
    );
    if (journeys.stateTriggered.length > 0) this.armJourneyCheck(scoring, now);
  }

  /** The re-entry rule's one read: the person's latest entry of a journey. */
  private readonly latestEntry: LatestEntry = (journey) => {
    const latest = latestEntry(this.sql, journey);
    return latest ? { status: latest.status, enteredAt: latest.entered_at } : null;
  };

  /** Records each entry (so a replay or a second trigger finds it) and starts its instance. */
  private enter(entries: readonly Entry[], now: Millis): string[] {
    const visitorId = this.held.state.visitorId;
    const started: Array<{ id: string; params: JourneyParams }> = [];
    for (const entry of entries) {
      const id = instanceId(entry.journey, visitorId, entry.cause);
      insertEntry(this.sql, {
        instance: id,
        journey: entry.journey,
        entered_at: now,
        status: "running",
        step: STARTING,
        reason: "",
        updated_at: now,
      });
      addLog(this.sql, { instance: id, step: STARTING, at: now, what: "entered", detail: entry.cause });
      started.push({ id, params: { visitorId, journey: entry.journey, enteredAt: now, cause: entry.cause } });
    }
    if (started.length) this.ctx.waitUntil(this.startInstances(started));
    return started.map((instance) => instance.id);
  }

  /**
   * One Workflows instance per entry, by its deterministic id: an id that exists already is the same
   * entry (a replay, or a retry after a crash), not an error. A start that fails is logged and tried
   * again by the next journey check.
   */
  private async startInstances(
    instances: ReadonlyArray<{ id: string; params: JourneyParams }>,
  ): Promise<void> {
    for (const instance of instances) {
      try {
        await this.env.JOURNEYS.create(instance);
      } catch (err) {
        const exists = await this.env.JOURNEYS.get(instance.id).then(
          () => true,
          () => false,
        );
        if (!exists) {
          log("error", "journey_not_started", { journey: instance.params.journey, error: String(err) });
        }
      }
    }
  }

  private forwardEvents(scoring: CompiledRules, fresh: readonly VisitorEvent[]): void {
    const sends: Array<{ instance: string; type: string; payload: { id: string; ts: Millis } }> = [];
    for (const entry of runningEntries(this.sql)) {
      const journey = scoring.journeys.byId[entry.journey];
      if (!journey) continue;
      for (const event of fresh)
        if (journey.listens.has(event.type))
          sends.push({ instance: entry.instance, type: event.type, payload: { id: event.id, ts: event.ts } });
    }
    if (sends.length === 0) return;
    this.ctx.waitUntil(
      (async () => {
        for (const send of sends) {
          try {
            const instance = await this.env.JOURNEYS.get(send.instance);
            await instance.sendEvent({ type: send.type, payload: send.payload });
          } catch (err) {
            // The instance checks the person's events at its next step anyway (exits, waits).
            log("warn", "journey_event_not_sent", { type: send.type, error: String(err) });
          }
        }
      })(),
    );
  }

  private async stopInstances(instances: readonly string[]): Promise<void> {
    for (const id of instances) {
      try {
        await (await this.env.JOURNEYS.get(id)).terminate();
      } catch (err) {
        log("warn", "journey_not_stopped", { error: String(err) });
      }
    }
  }

  /**
   * When a segment or condition trigger may next become true: the last activity plus the shortest
   * silence, or a kept trait's date plus the duration a comparison reads (`olderThan`), if sooner.
   */
  private nextJourneyCheck(scoring: CompiledRules | null, now: Millis): Millis | null {
    if (!scoring || scoring.journeys.stateTriggered.length === 0) return null;
    const silence = (this.held.state.lastSeen ?? now) + scoring.journeys.stateCheckMs + 1000;
    const turn = nextTraitChange(scoring.journeys.traits.dates, this.held.traits.traits, now);
    const due = turn === null ? silence : Math.min(silence, turn + 1000);
    return due > now ? due : null;
  }

  private armJourneyCheck(scoring: CompiledRules, now: Millis): void {
    const due = this.nextJourneyCheck(scoring, now);
    // Alarms run on the real clock: a check already due there was just made by this batch (and a
    // caller simulating another time must not fire the upkeep alarm at once).
    if (due === null || due <= Date.now()) return;
    this.ctx.waitUntil(
      this.alarmNoLaterThan(due).catch((err: unknown) => recordDroppedWrite("journey_check_not_armed", err)),
    );
  }

  async checkJourneyTriggers(now: Millis): Promise<string[]> {
    if (this.held.erased || this.held.mergedInto) return [];
    const scoring = await this.scoring();
    if (!scoring) return [];
    // Entries whose start failed are started again (same ids: an instance that did start is kept).
    // (A minute on the real clock: a start still under way is not stuck.)
    const stuck = runningEntries(this.sql).filter(
      (entry) => entry.step === STARTING && entry.updated_at < Date.now() - 60e3,
    );
    if (stuck.length)
      this.ctx.waitUntil(
        this.startInstances(
          stuck.map((entry) => ({
            id: entry.instance,
            params: {
              visitorId: this.held.state.visitorId,
              journey: entry.journey,
              enteredAt: entry.entered_at,
              cause: "retry",
            },
          })),
        ),
      );
    if (!this.marketing() || scoring.journeys.stateTriggered.length === 0) return [];
    return this.enter(
      entriesFor(scoring, [], this.held.state, this.latestEntry, now, "schedule", this.held.traits.traits),
      now,
    );
  }

  /**
   * A trait write: the traits the triggers read are kept (only with the privacy gate's leave to keep
   * anything of the person), then the segment and condition triggers are checked with them, through
   * the same code and the same marketing gate as after a batch, and the alarm comes back when a
   * trait's date comparison changes its answer (`olderThan`).
   */
  async journeyTraits(
    visitorId: string,
    traits: Readonly<Record<string, unknown>>,
    options: { now: Millis; consentMode?: ConsentMode; forwarded?: boolean },
  ): Promise<string[]> {
    if (this.held.erased) return [];
    const target = this.forwardTarget(options.forwarded);
    if (target) return target.journeyTraits(this.held.mergedInto!, traits, { ...options, forwarded: true });
    if (!this.privacy(options).keep) return [];
    this.ensureId(visitorId);
    // The same traits again (a retried write, an identical import): nothing to write, only the check.
    if (!sameTraits(this.held.traits.traits, traits)) {
      this.held.traits = { traits: { ...traits }, at: options.now };
      saveJourneyTraits(this.sql, this.held.traits);
    }
    const scoring = await this.scoring();
    // One alarm for both: the upkeep (a person known only by their traits is kept, and goes when
    // idle) and, sooner, the moment a trait's date comparison turns (a real-clock time).
    const due = this.nextJourneyCheck(scoring, options.now);
    const upkeep = nextUpkeepAt(this.held, this.upkeepBounds(), null, Date.now());
    this.ctx.waitUntil(
      this.alarmNoLaterThan(due !== null && due > Date.now() ? Math.min(due, upkeep) : upkeep).catch(
        (err: unknown) => recordDroppedWrite("journey_check_not_armed", err),
      ),
    );
    if (!scoring || scoring.journeys.stateTriggered.length === 0 || !this.marketing()) return [];
    return this.enter(
      entriesFor(
        scoring,
        [],
        this.held.state,
        this.latestEntry,
        options.now,
        "schedule",
        this.held.traits.traits,
      ),
      options.now,
    );
  }

  /**
   * A journey call on a visitor merged into a person: answered by the person's object, where the
   * entry now is, once a hand-over under way has finished (null: answered here).
   */
  private async journeyOwner(via: Forwarding | undefined): Promise<VisitorObject | null> {
    // Nothing awaited unless a hand-over is under way: the caller's local reads and writes then run
    // in this same turn, so none can slip between the hand-over's copy of the rows and their removal.
    while (this.handingOver) await this.handOverSettled();
    return this.held.erased ? null : this.forwardTarget(via?.forwarded);
  }

  /** A hand-over under way, finished either way (its own caller is told of a failure). */
  private async handOverSettled(): Promise<void> {
    if (!this.handingOver) return;
    try {
      await this.handingOver;
    } catch {
      // Failed: the address is withdrawn, and handOver's caller answers the error.
    }
  }

  async journeyFacts(instance: string, via?: Forwarding): Promise<JourneyFacts> {
    const owner = await this.journeyOwner(via);
    if (owner) return owner.journeyFacts(instance, { forwarded: true });
    if (this.held.erased)
      return { erased: true, marketing: false, consent: {}, entry: null, state: emptyHeld().state };
    const entry = readEntry(this.sql, instance);
    return {
      erased: false,
      marketing: this.marketing(),
      consent: { ...this.held.consent },
      entry: entry ? { status: entry.status, enteredAt: entry.entered_at, step: entry.step } : null,
      state: this.held.state,
    };
  }

  async journeyProgress(
    instance: string,
    progress: { step: string; what: string; detail?: string; now: Millis; end?: "ended" | "cancelled" },
    via?: Forwarding,
  ): Promise<void> {
    const owner = await this.journeyOwner(via);
    if (owner) return owner.journeyProgress(instance, progress, { forwarded: true });
    if (this.held.erased || !readEntry(this.sql, instance)) return;
    const detail = progress.detail ?? "";
    updateEntry(this.sql, instance, {
      step: progress.step,
      at: progress.now,
      ...(progress.end
        ? { status: progress.end, reason: `${progress.what}${detail ? `: ${detail}` : ""}` }
        : {}),
    });
    addLog(this.sql, { instance, step: progress.step, at: progress.now, what: progress.what, detail });
  }

  /**
   * A send step's reservation, atomic (no await between the checks and the write): the same key
   * answers the same way every time (a retried step never sends twice); otherwise the entry must
   * still run, marketing must be allowed, the frequency cap across journeys not reached, and the
   * first listed channel with consent is taken.
   */
  async reserveSend(request: SendRequest, via?: Forwarding): Promise<SendReservation> {
    const owner = await this.journeyOwner(via);
    if (owner) return owner.reserveSend(request, { forwarded: true });
    if (this.held.erased) return { status: "refused", reason: "erased" };
    const existing = readSend(this.sql, request.key);
    if (existing) {
      if (existing.outcome === "refused")
        return { status: "refused", reason: existing.reason as SendRefusal };
      return { status: "already", channel: existing.channel, outcome: existing.outcome };
    }
    const entry = readEntry(this.sql, request.instance);
    const refuse = (reason: SendRefusal): SendReservation => {
      if (entry) {
        this.recordSend(request, null, "refused", reason);
      }
      return { status: "refused", reason };
    };
    if (!entry || entry.status === "ended") return refuse("exited");
    if (entry.status === "cancelled") return refuse("cancelled");
    if (!this.marketing()) return refuse("consent");
    if (sendsSince(this.sql, request.now - request.capPerMs) >= request.capMax) return refuse("cap");
    const channel = request.channels.find((candidate) => this.marketing(candidate));
    if (!channel) return refuse("consent");
    this.recordSend(request, channel, "reserved", "");
    return { status: "reserved", channel };
  }

  private recordSend(
    request: SendRequest,
    channel: string | null,
    outcome: SendRow["outcome"],
    reason: string,
  ): void {
    insertSend(this.sql, {
      key: request.key,
      instance: request.instance,
      journey: request.journey,
      step: request.step,
      at: request.now,
      channel,
      outcome,
      reason,
    });
    addLog(this.sql, {
      instance: request.instance,
      step: request.step,
      at: request.now,
      what: outcome === "refused" ? "not sent" : "reserved",
      detail: outcome === "refused" ? reason : (channel ?? ""),
    });
  }

  async delivered(key: string, via?: Forwarding): Promise<boolean> {
    const owner = await this.journeyOwner(via);
    if (owner) return owner.delivered(key, { forwarded: true });
    return readSend(this.sql, key)?.outcome === "delivered";
  }

  /** Kept for a delivery consumer of the previous version (a gradual deploy); today's calls deliveryOutcome. */
  async markDelivered(key: string, via?: Forwarding): Promise<void> {
    const owner = await this.journeyOwner(via);
    if (owner) return owner.markDelivered(key, { forwarded: true });
    if (!this.held.erased) markDelivered(this.sql, key);
  }

  /**
   * A send step handed its message to delivery. Kept while the person's behaviour may be (the profile
   * export shows it), and exported once, when the privacy gate lets them be measured: the line and
   * the row commit together through the outbox, like an event's. A visitor merged into a person
   * answers from the person's object, where the entry now is.
   */
  async messageSent(message: SentMessage, via?: Forwarding): Promise<void> {
    const owner = await this.journeyOwner(via);
    if (owner) return owner.messageSent(message, { forwarded: true });
    const privacy = this.journeyPrivacy();
    if (!privacy.keep) return;
    let queued: SeqRange | null = null;
    this.transaction(() => {
      if (!recordSent(this.sql, message, message.sentAt) || !privacy.measure) return;
      queued = enqueueExport(this.sql, [messageRecord(this.exportId(), message, message.sentAt)], Date.now());
    });
    this.sendSoon(queued);
  }

  /** The delivery consumer's report: the reservation marked delivered, the outcome kept and exported once. */
  async deliveryOutcome(report: DeliveryReport, via?: Forwarding): Promise<void> {
    const owner = await this.journeyOwner(via);
    if (owner) return owner.deliveryOutcome(report, { forwarded: true });
    if (this.held.erased) return;
    const privacy = this.journeyPrivacy();
    let queued: SeqRange | null = null;
    this.transaction(() => {
      if (report.outcome === "delivered") markDelivered(this.sql, report.key);
      if (!privacy.keep || !recordOutcome(this.sql, report) || !privacy.measure) return;
      queued = enqueueExport(
        this.sql,
        [
          deliveryRecord(
            this.exportId(),
            {
              key: report.key,
              journey: report.journey,
              channel: report.channel,
              outcome: report.outcome,
              reason: report.reason,
              dryRun: report.dryRun,
            },
            report.at,
          ),
        ],
        Date.now(),
      );
    });
    this.sendSoon(queued);
  }

  /** The gate for what journeys leave behind: off any request, with the consent held and the deployment's mode. */
  private journeyPrivacy(): PrivacyVerdict {
    return this.privacy({ consentMode: readConfig(this.env).config.CONSENT_MODE });
  }

  async journeyRecords(via?: Forwarding): Promise<JourneyRecord[]> {
    const owner = await this.journeyOwner(via);
    if (owner) return owner.journeyRecords({ forwarded: true });
    if (this.held.erased) return [];
    return journeyRecords(this.sql);
  }

  async journeys(via?: Forwarding): Promise<JourneyView[]> {
    const owner = await this.journeyOwner(via);
    if (owner) return owner.journeys({ forwarded: true });
    if (this.held.erased) return [];
    return journeyViews(this.sql);
  }

  async cancelJourney(instance: string, now: Millis, via?: Forwarding): Promise<boolean> {
    const owner = await this.journeyOwner(via);
    if (owner) return owner.cancelJourney(instance, now, { forwarded: true });
    const entry = this.held.erased ? null : readEntry(this.sql, instance);
    if (entry?.status !== "running") return false;
    updateEntry(this.sql, instance, { status: "cancelled", reason: "cancelled by an admin", at: now });
    addLog(this.sql, { instance, step: entry.step, at: now, what: "cancelled", detail: "by an admin" });
    return true;
  }
}

/** The step an entry is on until its instance has started. */
const STARTING = "(starting)";
