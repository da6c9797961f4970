import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { DeliveryMessage } from "../../src/journeys/message.ts";
import { insertEntry, insertSend } from "../../src/state/journey-store.ts";
import type { VisitorDO } from "../../src/state/visitor-do.ts";
import { eid } from "./helpers.ts";

/**
 * A message reserved by `visitorId`'s object, as a journey's send step leaves it before the delivery
 * consumer takes it: an entry of the `probe` journey at its `message` step, its send reserved on SMS.
 * `fields` overrides the message's own (its rules version, its decision).
 */
export async function reserveMessage(
  visitorId: string,
  fields: Partial<DeliveryMessage> = {},
): Promise<DeliveryMessage> {
  const instance = `probe-${eid()}`;
  const key = `${instance}.message`;
  const now = Date.now();
  await runInDurableObject(
    env.VISITOR.get(env.VISITOR.idFromName(visitorId)),
    (_object: VisitorDO, state) => {
      const sql = state.storage.sql;
      insertEntry(sql, {
        instance,
        journey: "probe",
        entered_at: now,
        status: "running",
        step: "message",
        reason: "",
        updated_at: now,
      });
      insertSend(sql, {
        key,
        instance,
        journey: "probe",
        step: "message",
        at: now,
        channel: "sms",
        outcome: "reserved",
        reason: "",
      });
    },
  );
  return {
    key,
    visitorId,
    journey: "probe",
    instance,
    step: "message",
    channel: "sms",
    placement: "sms-text",
    sendAt: now,
    rulesVersion: "journeys-test-1",
    dryRun: false,
    decision: { experience: null, variant: null, reason: "default" },
    content: { html: null, json: { text: "hello" } },
    ...fields,
  };
}
