import * as z from "zod";
import type { Millis, VisitorEvent } from "../core/model.ts";

/**
 * The event stream out (docs/export.md): one record per fact Northstar acknowledged, as it travels
 * on the EXPORT queue and as it is written, one JSON line each, into the R2 files. The zod schema
 * is the contract: the producers build records with the functions below, the consumer parses every
 * message with it before writing, and docs/export.schema.json is generated from it
 * (export-json-schema.ts, `npm run export:schema`; a drift test fails when it is stale).
 *
 * Every record has a stable `id`: the same fact sent twice (a retried send, a redelivered message)
 * carries the same id, so a warehouse keeps one row per id. `v` is the schema version of its kind:
 * a change that a reader could misread gets a new version, and old lines keep theirs.
 */

/** The schema version every line written today carries. */
export const EXPORT_SCHEMA_VERSION = 1;

const Version = z.literal(EXPORT_SCHEMA_VERSION).describe("the schema version of this line");
const Id = z
  .string()
  .min(1)
  .max(600)
  .describe("stable: the same fact always has this id (deduplicate by it)");
const At = z.iso.datetime().describe("when it happened (UTC, ISO 8601): the file's date and hour partition");
const VisitorId = z
  .string()
  .min(1)
  .max(200)
  .describe("the canonical visitor id: anonymous (base64url) or a known person's u_…");

/**
 * The fields every line starts with, in this order: its version, its kind, its id, when it happened
 * and whose it is (a kind may say more of `at` and `visitorId` in its own words).
 */
function envelopeFields<K extends string>(
  kind: K,
  at: typeof At = At,
  visitorId: typeof VisitorId = VisitorId,
) {
  return { v: Version, kind: z.literal(kind), id: Id, at, visitorId };
}

export const EventRecordSchema = z
  .strictObject({
    ...envelopeFields("event"),
    event: z.strictObject({
      id: z.string().min(1).describe("the sender's event id (unique per visitor)"),
      type: z.string().min(1),
      ts: z.number().int().describe("epoch ms, as stored"),
      channel: z.string(),
      props: z.record(z.string(), z.unknown()),
    }),
  })
  .describe("an event the visitor's object stored (beacon, /v1/events, /v1/decide, page views, backfill)");
export type EventRecord = z.infer<typeof EventRecordSchema>;

export const ExposureRecordSchema = z
  .strictObject({
    ...envelopeFields("exposure"),
    placement: z.string(),
    experience: z.string(),
    experiment: z.string().nullable().describe("the experiment this experience is an arm of, if any"),
    variant: z.string().nullable(),
    rulesVersion: z.string().nullable().describe("the rules version that decided it"),
  })
  .describe("a decision that was shown: an experience in a placement");
export type ExposureRecord = z.infer<typeof ExposureRecordSchema>;

export const IdentityLinkRecordSchema = z
  .strictObject({
    ...envelopeFields("identity_link", At, VisitorId.describe("the known person's canonical id (u_…)")),
    anonymousId: z.string().min(1).max(200).describe("the visitor id now linked to that person"),
  })
  .describe("an anonymous visitor linked to a known person: their rows are one person's from now on");
export type IdentityLinkRecord = z.infer<typeof IdentityLinkRecordSchema>;

export const ErasureRecordSchema = z
  .strictObject({
    ...envelopeFields("erasure", At, VisitorId.describe("the erased person's canonical id")),
    ids: z
      .array(z.string().min(1).max(200))
      .min(1)
      .describe("every id the person was known by: the canonical id and each alias; delete rows of any"),
  })
  .describe("a person erased (DELETE /v1/profiles/:id): delete every row of these ids downstream");
export type ErasureRecord = z.infer<typeof ErasureRecordSchema>;

const MessageKey = z
  .string()
  .min(1)
  .max(200)
  .describe("the message's Idempotency-Key (<instance>.<step>): the destination received it under this key");
const Channel = z.enum(["sms", "push", "email"]);

export const MessageRecordSchema = z
  .strictObject({
    ...envelopeFields(
      "message",
      At.describe(
        "when the journey handed it to delivery (its send time, after the person's hour and quiet hours)",
      ),
    ),
    key: MessageKey,
    journey: z.string(),
    instance: z.string().describe("the journey entry (Workflows instance) that sent it"),
    step: z.string(),
    channel: Channel,
    placement: z.string().describe("the channel placement whose decision is the message"),
    experience: z.string().nullable().describe("the decision's experience; null: the placement's default"),
    experiment: z.string().nullable().describe("the experiment this experience is an arm of, if any"),
    variant: z.string().nullable(),
    rulesVersion: z.string().describe("the rules version that decided it"),
    dryRun: z.boolean().describe("true: sent to the log destination only, never to the person"),
  })
  .describe("a journey's message handed to delivery: what the person was sent, on which channel, and why");
export type MessageRecord = z.infer<typeof MessageRecordSchema>;

export const DeliveryRecordSchema = z
  .strictObject({
    ...envelopeFields("delivery", At.describe("when the outcome was known")),
    key: MessageKey.describe("the message's Idempotency-Key: join with the message line's `key`"),
    journey: z.string(),
    channel: Channel,
    outcome: z
      .enum(["delivered", "dead_lettered"])
      .describe("delivered: the destination took it (2xx); dead_lettered: Northstar gave up on it"),
    reason: z.string().nullable().describe("why it was dead-lettered; null when delivered"),
    dryRun: z.boolean().describe("true: delivered to the log destination only"),
  })
  .describe("what became of a journey's message: delivered, or kept as a dead letter");
export type DeliveryRecord = z.infer<typeof DeliveryRecordSchema>;

export const ExportRecordSchema = z.discriminatedUnion("kind", [
  EventRecordSchema,
  ExposureRecordSchema,
  IdentityLinkRecordSchema,
  ErasureRecordSchema,
  MessageRecordSchema,
  DeliveryRecordSchema,
]);
export type ExportRecord = z.infer<typeof ExportRecordSchema>;

/**
 * What one EXPORT queue message carries: the records sent together (a page's lines, a batch's
 * events), up to 64 KB, so that they cost one queue operation each way instead of one per record
 * (docs/decisions.md, record 27). A message of one bare record, as sent before, is read too.
 */
export const ExportMessageSchema = z.union([ExportRecordSchema, z.array(ExportRecordSchema).min(1)]);
export type ExportMessage = z.infer<typeof ExportMessageSchema>;
export type ExportKind = ExportRecord["kind"];
export const EXPORT_KINDS: readonly ExportKind[] = [
  "event",
  "exposure",
  "identity_link",
  "erasure",
  "message",
  "delivery",
];

const iso = (at: Millis): string => new Date(at).toISOString();

/**
 * What every line starts with: its kind's schema version, its kind, its stable id (the kind, then
 * the parts that name the fact, joined by ":"), when it happened and whose it is.
 */
function envelope<K extends ExportKind>(
  kind: K,
  at: Millis,
  visitorId: string,
  ...idParts: ReadonlyArray<string | number>
): { v: typeof EXPORT_SCHEMA_VERSION; kind: K; id: string; at: string; visitorId: string } {
  return { v: EXPORT_SCHEMA_VERSION, kind, id: [kind, ...idParts].join(":"), at: iso(at), visitorId };
}

/** A stored event: its id is the visitor's and the sender's, which the object stores once. */
export function eventRecord(visitorId: string, event: VisitorEvent): EventRecord {
  return {
    ...envelope("event", event.ts, visitorId, visitorId, event.id),
    event: { id: event.id, type: event.type, ts: event.ts, channel: event.channel, props: event.props },
  };
}

/** What one decision showed in one placement; a retried record of the same decision has the same id. */
export function exposureRecord(
  visitorId: string,
  at: Millis,
  shown: {
    readonly placement: string;
    readonly experience: string;
    readonly experiment: string | null;
    readonly variant: string | null;
  },
  rulesVersion: string | null,
): ExposureRecord {
  return {
    ...envelope("exposure", at, visitorId, visitorId, at, shown.placement),
    placement: shown.placement,
    experience: shown.experience,
    experiment: shown.experiment,
    variant: shown.variant,
    rulesVersion,
  };
}

/** What a decision showed, as the export's lines: one per exposure that names its placement. */
export function shownRecords(
  visitorId: string,
  at: Millis,
  exposures: ReadonlyArray<{
    readonly experience: string;
    readonly placement?: string;
    readonly experiment?: string | null;
    readonly variant?: string | null;
  }>,
  rulesVersion: string | null,
): ExposureRecord[] {
  return exposures.flatMap((shown) =>
    shown.placement === undefined
      ? []
      : [
          exposureRecord(
            visitorId,
            at,
            {
              placement: shown.placement,
              experience: shown.experience,
              experiment: shown.experiment ?? null,
              variant: shown.variant ?? null,
            },
            rulesVersion,
          ),
        ],
  );
}

/** A link holds once: identifying the same pair again is the same record. */
export function identityLinkRecord(anonymousId: string, visitorId: string, at: Millis): IdentityLinkRecord {
  return { ...envelope("identity_link", at, visitorId, anonymousId, visitorId), anonymousId };
}

/**
 * An erasure names every id. Each erasure call is its own record (a retried call finds fewer ids: the
 * alias list went with the first), so the warehouse deletes by the ids of every erasure line it holds.
 */
export function erasureRecord(visitorId: string, ids: readonly string[], at: Millis): ErasureRecord {
  return { ...envelope("erasure", at, visitorId, visitorId, at), ids: [...new Set([visitorId, ...ids])] };
}

/** What a journey's message line says (export-record's own fields aside). */
export type MessageFacts = Omit<MessageRecord, "v" | "kind" | "id" | "at" | "visitorId">;

/** A journey's message as it was handed to delivery: one per idempotency key. */
export function messageRecord(visitorId: string, message: MessageFacts, sentAt: Millis): MessageRecord {
  return {
    ...envelope("message", sentAt, visitorId, visitorId, message.key),
    // Named one by one: a caller's extra field must not make the strict line invalid.
    key: message.key,
    journey: message.journey,
    instance: message.instance,
    step: message.step,
    channel: message.channel,
    placement: message.placement,
    experience: message.experience,
    experiment: message.experiment,
    variant: message.variant,
    rulesVersion: message.rulesVersion,
    dryRun: message.dryRun,
  };
}

/** A message's outcome: one per idempotency key (a message is delivered or dead-lettered once). */
export function deliveryRecord(
  visitorId: string,
  delivery: Omit<DeliveryRecord, "v" | "kind" | "id" | "at" | "visitorId">,
  at: Millis,
): DeliveryRecord {
  return {
    ...envelope("delivery", at, visitorId, visitorId, delivery.key),
    key: delivery.key,
    journey: delivery.journey,
    channel: delivery.channel,
    outcome: delivery.outcome,
    reason: delivery.reason,
    dryRun: delivery.dryRun,
  };
}
