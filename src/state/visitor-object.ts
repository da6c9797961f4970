import * as z from "zod";
import type { ConsentMode } from "../core/consent.ts";
import type { GoalEvent } from "../core/goals.ts";
import type { Consent, Millis, VisitorEvent, VisitorState } from "../core/model.ts";
import type { PageReads } from "../core/page-state.ts";
import type { Env } from "../platform/env.ts";
import type { MessageFacts } from "./export-record.ts";
import type { DeliveryReport, JourneyRecord, MessageRows } from "./journey-messages.ts";
import type { JourneyRows, JourneyView } from "./journey-store.ts";

export type { JourneyView };

/**
 * The visitor's object as its callers see it: the RPC contract of `VisitorDO` (src/state/visitor-do.ts),
 * its options and answers. A leaf: the routes, the edge and other visitors' objects import this,
 * never the class, so no layer reaches into the object's storage code to learn a type.
 */

/**
 * What a new visitor's first page assigned and showed, checked against the rules by the caller
 * (src/edge/first-page.ts), recorded by the beacon's first call (docs/decisions.md, record 12).
 */
export interface FirstPageRecord {
  readonly assignments: Readonly<Record<string, string>>;
  readonly exposures: ReadonlyArray<{
    readonly experience: string;
    readonly placement: string;
    readonly experiment: string | null;
    readonly variant: string | null;
    readonly capped: boolean;
  }>;
  readonly rulesVersion: string;
}

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
  /** The first page's decision, kept (and exported) when this batch stored something new. */
  readonly firstPage?: FirstPageRecord | undefined;
}

export type IngestResult =
  | {
      readonly status: "stored";
      readonly accepted: number;
      readonly duplicates: number;
      /** Events that could not be applied (a defect, not bad input): kept as dead letters, not stored, so a retry tries again. */
      readonly failed: ReadonlyArray<{ readonly id: string; readonly reason: string }>;
      /** Experiment goal events of this batch (new event ids only), for measurement. */
      readonly conversions: readonly GoalEvent[];
      /** The first page's assignments were kept and may be counted in their experiments. */
      readonly firstPageCounted?: boolean;
    }
  | { readonly status: "rate_limited"; readonly retryAfterSeconds: number }
  | { readonly status: "suppressed" }
  | { readonly status: "no_consent" };

export interface BackfillOptions {
  readonly now: Millis;
  readonly forwarded?: boolean;
  /** How an unanswered purpose is read (the deployment's CONSENT_MODE); opt-out when absent. */
  readonly consentMode?: ConsentMode;
  /** The request carried Global Privacy Control: nothing is recorded. */
  readonly gpc?: boolean;
}

/** What became of one backfilled event, in the order they were sent. */
export type BackfillLine =
  | { readonly status: "accepted" }
  | { readonly status: "duplicate" }
  | { readonly status: "refused"; readonly reason: string };

export type BackfillResult =
  | {
      readonly status: "stored";
      /** One per event sent, in the same order. */
      readonly lines: readonly BackfillLine[];
      /** Experiment goals reached by the backfill, for measurement (as live conversions are). */
      readonly conversions: readonly GoalEvent[];
    }
  | { readonly status: "suppressed" }
  | { readonly status: "not_recorded"; readonly reason: "gpc" | "consent" };

export interface SnapshotOptions {
  readonly now: Millis;
  /** The page being served, counted in this very decision (and stored just after). */
  readonly pageView?: VisitorEvent | undefined;
  readonly visitorId?: string;
  /** Only events after this time are sent back: the rules read no further (eventHorizonMs). */
  readonly eventsSince?: Millis;
  /**
   * A web page's call: only what its placements read of the rest crosses back too (core/page-state.ts,
   * docs/decisions.md record 29). Absent (the decide API, a preview): the whole state but the log's trim.
   */
  readonly reads?: PageReads;
  readonly forwarded?: boolean;
  /** How an unanswered purpose is read (the deployment's CONSENT_MODE); opt-out when absent. */
  readonly consentMode?: ConsentMode;
}

/**
 * The decision path's read: the visitor's state, and whether the person was erased (their page is
 * then decided from nothing, and the caller exports nothing of it). `pageViewMeasured`: the page
 * view this call counted may be measured by the object's own gate (the consent it holds), so the
 * caller may export its line; the object never does (docs/decisions.md, record 23).
 */
export type VisitorSnapshot = VisitorState & { readonly erased?: true; readonly pageViewMeasured?: true };

export interface DecisionRecord {
  readonly now: Millis;
  /** What was shown. A capped one (or one not saying) is stored for its frequency caps. */
  readonly exposures: ReadonlyArray<{
    readonly experience: string;
    readonly placement?: string;
    readonly experiment?: string | null;
    readonly variant?: string | null;
    readonly capped?: boolean;
  }>;
  /** The visitor the decision was for. */
  readonly visitorId?: string;
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

/** A rejected or unappliable event, kept aside for inspection (table `dead_letter`). */
export const DeadLetterSchema = z.object({ at: z.number(), reason: z.string(), raw: z.string() }).readonly();
export type DeadLetter = z.infer<typeof DeadLetterSchema>;

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
  /** A merge only: the visitor's journeys (entries, messages, logs), which go on as the person's. */
  readonly journeys?: JourneyRows;
  /** A merge only: what the visitor's journeys sent and what became of it (goes with `journeys`). */
  readonly journeyMessages?: MessageRows;
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

/**
 * A visitor's object as its callers (and other visitors' objects) see it over Workers RPC. Typed by
 * hand because the derived stub type maps any method whose arguments or result hold `unknown`
 * (event properties and traits are arbitrary JSON) to `never`.
 */
export interface VisitorObject {
  ingest(visitorId: string, events: readonly VisitorEvent[], options: IngestOptions): Promise<IngestResult>;
  /** Older history in any time order, folded in as if it had arrived live in time order (backfill). */
  backfill(
    visitorId: string,
    events: readonly VisitorEvent[],
    options: BackfillOptions,
  ): Promise<BackfillResult>;
  snapshot(options: SnapshotOptions): Promise<VisitorSnapshot>;
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
  /**
   * Journeys (src/journeys/): the facts a step checks, its progress, and its message's reservation.
   * A visitor merged into a person answers these from the person's object (their journeys moved
   * there), once any hand-over under way has finished; `via.forwarded`: already forwarded once.
   */
  journeyFacts(instance: string, via?: Forwarding): Promise<JourneyFacts>;
  journeyProgress(
    instance: string,
    progress: { step: string; what: string; detail?: string; now: Millis; end?: "ended" | "cancelled" },
    via?: Forwarding,
  ): Promise<void>;
  reserveSend(request: SendRequest, via?: Forwarding): Promise<SendReservation>;
  /** The delivery consumer: whether `key` was delivered already, and recording that it now was. */
  delivered(key: string, via?: Forwarding): Promise<boolean>;
  markDelivered(key: string, via?: Forwarding): Promise<void>;
  journeys(via?: Forwarding): Promise<JourneyView[]>;
  /** A send step handed its message to delivery: kept for the profile export, exported once. */
  messageSent(message: SentMessage, via?: Forwarding): Promise<void>;
  /** The delivery consumer: the message was delivered, or kept as a dead letter; exported once. */
  deliveryOutcome(report: DeliveryReport, via?: Forwarding): Promise<void>;
  /** Everything held of the person's journeys, with what each message sent (the profile export). */
  journeyRecords(via?: Forwarding): Promise<JourneyRecord[]>;
  cancelJourney(instance: string, now: Millis, via?: Forwarding): Promise<boolean>;
  /**
   * A trait write (identify, a profile PUT or import, a journey's setTrait): the traits the journey
   * triggers read (`traits`, picked by the caller: src/rules/journey-traits.ts) kept, and the triggers
   * checked with them at once. Answers the instances it started.
   */
  journeyTraits(
    visitorId: string,
    traits: Readonly<Record<string, unknown>>,
    options: { now: Millis; consentMode?: ConsentMode; forwarded?: boolean },
  ): Promise<string[]>;
  /** Segment and condition triggers, checked on the object's schedule (or by a test at a simulated time). */
  checkJourneyTriggers(now: Millis, options?: { consentMode?: ConsentMode }): Promise<string[]>;
}

/** Set by an object that forwards a call to the one it was merged into: a call is forwarded at most once. */
export interface Forwarding {
  readonly forwarded?: boolean;
}

/** What a journey's Workflows instance is started with (src/journeys/journey-workflow.ts). */
export interface JourneyParams {
  /** The person when the entry started; after a login merge, the alias leads to the person's id. */
  readonly visitorId: string;
  readonly journey: string;
  /** When the trigger fired, on the clock the batch was stored with. */
  readonly enteredAt: Millis;
  /** What started it: the triggering event's id, or the state trigger's entry window. */
  readonly cause: string;
}

/** What a journey's step reads of the person, asked of their object at every step. */
export interface JourneyFacts {
  readonly erased: boolean;
  /** The privacy gate allows marketing to this person at all (the `marketing` purpose). */
  readonly marketing: boolean;
  readonly consent: Consent;
  /** This entry as the object holds it; null when it holds none (erased, or never entered). */
  readonly entry: {
    readonly status: "running" | "ended" | "cancelled";
    readonly enteredAt: Millis;
    readonly step: string;
  } | null;
  readonly state: VisitorState;
}

/** A send step asking to reserve its message (idempotent by `key`: instance id and step). */
export interface SendRequest {
  readonly key: string;
  readonly instance: string;
  readonly journey: string;
  readonly step: string;
  readonly now: Millis;
  /** The channels to try, in order (the preferred one first); the first with consent is taken. */
  readonly channels: readonly string[];
  /** The frequency cap across all journeys (settings.messaging.cap). */
  readonly capMax: number;
  readonly capPerMs: number;
  readonly consentMode?: ConsentMode;
}

/** Why a message was not sent; the admin API's explanation uses the same words. */
export const SEND_REFUSALS = ["consent", "cap", "erased", "cancelled", "exited"] as const;
export type SendRefusal = (typeof SEND_REFUSALS)[number];

export type SendReservation =
  | { readonly status: "reserved"; readonly channel: string }
  /** The same key was reserved before (a retried step): the same channel, never a second message. */
  | { readonly status: "already"; readonly channel: string | null; readonly outcome: string }
  | { readonly status: "refused"; readonly reason: SendRefusal };

/** The object of one canonical visitor id. */
export function visitorObject(env: Pick<Env, "VISITOR">, visitorId: string): VisitorObject {
  // The stub has exactly these methods (VisitorDO's public surface); only its derived type is lost.
  return env.VISITOR.get(env.VISITOR.idFromName(visitorId)) as unknown as VisitorObject;
}

export type { DeliveryReport, JourneyRecord } from "./journey-messages.ts";

/** A journey's message as its send step handed it to delivery (the decision that made it included). */
export interface SentMessage extends MessageFacts {
  /** When the journey sent it, on its own clock (the person's hour, after quiet hours). */
  readonly sentAt: Millis;
}

/** The ids of the page views the proxy records: `pv:<uuid>`, made by the worker for one page, never sent twice. */
export const PAGE_VIEW_ID_PREFIX = "pv:";
