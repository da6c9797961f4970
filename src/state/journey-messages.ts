import * as z from "zod";
import type { Millis } from "../core/model.ts";
import type { MessageFacts } from "./export-record.ts";
import { allEntries, logOf, sendsOf } from "./journey-store.ts";
import { parseStored } from "./stored-value.ts";
import type { DeliveryReport, JourneyRecord } from "./visitor-object.ts";

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

export function createMessageTable(sql: SqlStorage): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS journey_message (
      key TEXT PRIMARY KEY, instance TEXT NOT NULL, journey TEXT NOT NULL, step TEXT NOT NULL,
      channel TEXT NOT NULL, placement TEXT NOT NULL, experience TEXT, experiment TEXT, variant TEXT,
      rules_version TEXT, dry_run INTEGER NOT NULL, sent_at INTEGER, outcome TEXT, outcome_at INTEGER,
      reason TEXT)`);
}

function readMessage(sql: SqlStorage, key: string): MessageRow | null {
  const raw = sql.exec("SELECT * FROM journey_message WHERE key = ?", key).toArray()[0];
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
  sql.exec(
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
  sql.exec(
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

/** Withdrawn personalization consent or an erasure: the messages' history goes with the journeys. */
export function deleteMessages(sql: SqlStorage): void {
  sql.exec("DELETE FROM journey_message");
}

/**
 * Everything the object holds of the person's journeys, for the profile export: each entry, its
 * messages (reserved or refused, and for those handed to delivery what was sent and what became of
 * it) and its log.
 */
export function journeyRecords(sql: SqlStorage): JourneyRecord[] {
  const sent = new Map<string, MessageRow>();
  for (const raw of sql.exec("SELECT * FROM journey_message")) {
    const row = parseStored(MessageRowSchema, raw, "journey_message");
    if (row) sent.set(row.key, row);
  }
  return allEntries(sql).map((entry) => ({
    instance: entry.instance,
    journey: entry.journey,
    enteredAt: entry.entered_at,
    status: entry.status,
    step: entry.step,
    reason: entry.reason,
    updatedAt: entry.updated_at,
    messages: sendsOf(sql, entry.instance).map((send) => {
      const row = sent.get(send.key);
      return {
        key: send.key,
        step: send.step,
        at: send.at,
        channel: send.channel,
        outcome: send.outcome,
        reason: send.reason,
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
    log: logOf(sql, entry.instance).map(({ step, at, what, detail }) => ({ step, at, what, detail })),
  }));
}
