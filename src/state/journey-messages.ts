import * as z from "zod";
import type { Millis } from "../core/model.ts";
import type { MessageFacts } from "./export-record.ts";
import { type JourneyView, journeyViews } from "./journey-store.ts";
import { lazyTable } from "./lazy-tables.ts";
import { parseStored } from "./stored-value.ts";

/**
 * The messages a person's journeys handed to delivery, and what became of each (docs/storage.md,
 * `journey_message`): one row per idempotency key, on the visitor's object beside the journeys'
 * reservations (journey-store.ts). What the profile export shows of a message (its placement, the
 * decision's experience and variant, when it was sent and delivered) and what the export's `message`
 * and `delivery` lines are made from (docs/export.md). Two writers fill a row, in either order: the
 * journey's step once it enqueued the message, and the delivery consumer once the destination
 * answered (it may answer first). Each write says whether it was the first of its kind, so each
 * line is exported once.
 */

const ChannelSchema = z.enum(["sms", "push", "email"]);
export const DELIVERY_OUTCOMES = ["delivered", "dead_lettered"] as const;

/** What became of a message at its destination, as the delivery consumer reports it. */
export interface DeliveryReport {
  readonly key: string;
  readonly instance: string;
  readonly journey: string;
  readonly step: string;
  readonly channel: "sms" | "push" | "email";
  readonly placement: string;
  readonly experience: string | null;
  readonly variant: string | null;
  readonly rulesVersion: string;
  readonly dryRun: boolean;
  readonly outcome: (typeof DELIVERY_OUTCOMES)[number];
  /** Why it was dead-lettered; null when delivered. */
  readonly reason: string | null;
  readonly at: Millis;
}

/** What was sent of a message handed to delivery, and what became of it. */
export interface SentDetails {
  readonly placement: string;
  readonly experience: string | null;
  readonly experiment: string | null;
  readonly variant: string | null;
  readonly rulesVersion: string | null;
  readonly dryRun: boolean;
  /** Null when only the delivery outcome was recorded (the step's own record did not arrive). */
  readonly sentAt: Millis | null;
  readonly delivery: (typeof DELIVERY_OUTCOMES)[number] | null;
  readonly deliveryAt: Millis | null;
  readonly deliveryReason: string | null;
}

/**
 * One journey entry as the profile export shows it: the admin API's view of it (its step, status,
 * messages and log), each message with what was sent (null when it never was: refused).
 */
export interface JourneyRecord extends Omit<JourneyView, "messages"> {
  readonly messages: ReadonlyArray<
    JourneyView["messages"][number] & {
      /** Handed to delivery: what was sent and what became of it; null when it never was (refused). */
      readonly sent: SentDetails | null;
    }
  >;
}

const MessageRowSchema = z.object({
  key: z.string(),
  instance: z.string(),
  journey: z.string(),
  step: z.string(),
  channel: ChannelSchema,
  placement: z.string(),
  experience: z.string().nullable(),
  experiment: z.string().nullable(),
  variant: z.string().nullable(),
  rules_version: z.string().nullable(),
  dry_run: z.number(),
  sent_at: z.number().nullable(),
  outcome: z.enum(DELIVERY_OUTCOMES).nullable(),
  outcome_at: z.number().nullable(),
  reason: z.string().nullable(),
});
type MessageRow = z.infer<typeof MessageRowSchema>;
/** Every row, as a login's hand-over carries them to the person's object (with the journeys). */
export const MessageRowsSchema = z.array(MessageRowSchema);
export type MessageRows = z.infer<typeof MessageRowsSchema>;

/** Created by the first message a journey hands to delivery (lazy-tables.ts). */
const messageTable = lazyTable("journey_message", (sql) =>
  sql.exec(`CREATE TABLE IF NOT EXISTS journey_message (
      key TEXT PRIMARY KEY, instance TEXT NOT NULL, journey TEXT NOT NULL, step TEXT NOT NULL,
      channel TEXT NOT NULL, placement TEXT NOT NULL, experience TEXT, experiment TEXT, variant TEXT,
      rules_version TEXT, dry_run INTEGER NOT NULL, sent_at INTEGER, outcome TEXT, outcome_at INTEGER,
      reason TEXT)`),
);

function readMessage(sql: SqlStorage, key: string): MessageRow | null {
  const raw = messageTable.query(sql, "SELECT * FROM journey_message WHERE key = ?", key)[0];
  return raw === undefined ? null : (parseStored(MessageRowSchema, raw, "journey_message") ?? null);
}

/**
 * The message as its send step handed it to delivery. True only the first time for this key (a
 * retried step records nothing new): the caller exports its line then.
 */
export function recordSent(sql: SqlStorage, message: MessageFacts, sentAt: Millis): boolean {
  const row = readMessage(sql, message.key);
  if (row?.sent_at != null) return false;
  // The consumer may have reported the outcome first: its row gets the decision's side.
  messageTable.write(
    sql,
    `INSERT INTO journey_message (key, instance, journey, step, channel, placement, experience, experiment,
       variant, rules_version, dry_run, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET experience = excluded.experience, experiment = excluded.experiment,
       variant = excluded.variant, rules_version = excluded.rules_version, sent_at = excluded.sent_at`,
    message.key,
    message.instance,
    message.journey,
    message.step,
    message.channel,
    message.placement,
    message.experience,
    message.experiment,
    message.variant,
    message.rulesVersion,
    message.dryRun ? 1 : 0,
    sentAt,
  );
  return true;
}

/**
 * What became of the message, as the delivery consumer reports it. True only for its first outcome
 * (a message is delivered, or dead-lettered, once; a redelivered report records nothing new).
 */
export function recordOutcome(sql: SqlStorage, report: DeliveryReport): boolean {
  const row = readMessage(sql, report.key);
  if (row?.outcome != null) return false;
  messageTable.write(
    sql,
    `INSERT INTO journey_message (key, instance, journey, step, channel, placement, experience, variant,
       rules_version, dry_run, outcome, outcome_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET outcome = excluded.outcome, outcome_at = excluded.outcome_at,
       reason = excluded.reason`,
    report.key,
    report.instance,
    report.journey,
    report.step,
    report.channel,
    report.placement,
    report.experience,
    report.variant,
    report.rulesVersion,
    report.dryRun ? 1 : 0,
    report.outcome,
    report.at,
    report.reason,
  );
  return true;
}

function allMessages(sql: SqlStorage): MessageRow[] {
  const out: MessageRow[] = [];
  for (const raw of messageTable.query(sql, "SELECT * FROM journey_message")) {
    const row = parseStored(MessageRowSchema, raw, "journey_message");
    if (row) out.push(row);
  }
  return out;
}

/** The rows a login hands over to the person's object, beside the journeys' own (journeyRows). */
export function messageRows(sql: SqlStorage): MessageRows {
  return allMessages(sql);
}

/**
 * A merged visitor's messages, folded into the person's with their journeys (foldJourneys):
 * idempotent, a key already held is kept as it is. Their lines were exported under the visitor's id
 * already, and are not exported again.
 */
export function foldMessages(sql: SqlStorage, source: MessageRows): void {
  for (const row of source)
    messageTable.write(
      sql,
      `INSERT OR IGNORE INTO journey_message (key, instance, journey, step, channel, placement, experience,
         experiment, variant, rules_version, dry_run, sent_at, outcome, outcome_at, reason)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      row.key,
      row.instance,
      row.journey,
      row.step,
      row.channel,
      row.placement,
      row.experience,
      row.experiment,
      row.variant,
      row.rules_version,
      row.dry_run,
      row.sent_at,
      row.outcome,
      row.outcome_at,
      row.reason,
    );
}

/** Withdrawn personalization consent, or a hand-over done: the messages' history goes with the journeys. */
export function deleteMessages(sql: SqlStorage): void {
  messageTable.query(sql, "DELETE FROM journey_message");
}

/**
 * Everything the object holds of the person's journeys, for the profile export: each entry, its
 * messages (reserved or refused, and for those handed to delivery what was sent and what became of
 * it) and its log.
 */
export function journeyRecords(sql: SqlStorage): JourneyRecord[] {
  const sent = new Map(allMessages(sql).map((row) => [row.key, row]));
  return journeyViews(sql).map((entry) => ({
    ...entry,
    messages: entry.messages.map((message) => {
      const row = sent.get(message.key);
      return {
        ...message,
        sent: row
          ? {
              placement: row.placement,
              experience: row.experience,
              experiment: row.experiment,
              variant: row.variant,
              rulesVersion: row.rules_version,
              dryRun: row.dry_run === 1,
              sentAt: row.sent_at,
              delivery: row.outcome,
              deliveryAt: row.outcome_at,
              deliveryReason: row.reason,
            }
          : null,
      };
    }),
  }));
}
