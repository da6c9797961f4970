import { type Config, readConfig } from "../platform/config.ts";
import { signValue } from "../platform/crypto.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { recordDroppedWrite } from "../state/stored-value.ts";
import { type DeliveryReport, visitorObject } from "../state/visitor-object.ts";
import { type DeliveryDeadLetter, type DeliveryMessage, DeliveryMessageSchema } from "./message.ts";

/**
 * The DELIVERY queue's consumer: each message POSTed to its channel's webhook, signed, with its
 * Idempotency-Key (docs/journeys.md, the delivery contract). Exactly once, end to end: a key the
 * visitor's object records as delivered is never posted again, and a crash between the destination's
 * answer and that record posts the same key again, which the destination dedupes. A failure is
 * retried with backoff; the last attempt, or an answer that no retry can change (a 4xx), keeps the
 * message as a dead letter with its reason (DEAD_LETTERS, listed by the admin API).
 */

export const SIGNATURE_HEADER = "x-northstar-signature";

/** Seconds before attempt n + 1: 10 s, 20 s, 40 s … capped at 10 minutes. */
export function backoffSeconds(attempts: number): number {
  return Math.min(600, 10 * 2 ** Math.max(0, attempts - 1));
}

/** `t=<unix seconds>,v1=<base64url HMAC-SHA256 of "<t>.<body>">`, as a destination verifies it. */
export async function signature(secret: string, body: string, atSeconds: number): Promise<string> {
  return `t=${atSeconds},v1=${await signValue(secret, `${atSeconds}.${body}`)}`;
}

const TARGET_KEY = { sms: "WEBHOOK_SMS", push: "WEBHOOK_PUSH", email: "WEBHOOK_EMAIL" } as const;
const SECRET_KEY = {
  sms: "WEBHOOK_SECRET_SMS",
  push: "WEBHOOK_SECRET_PUSH",
  email: "WEBHOOK_SECRET_EMAIL",
} as const;

type Attempt = { ok: true } | { ok: false; retry: boolean; reason: string };

/** One POST to the channel's webhook (through DESTINATION_SERVICE where bound: the demo's outbox, the tests'). */
async function post(env: Env, config: Config, message: DeliveryMessage): Promise<Attempt> {
  const target = config[TARGET_KEY[message.channel]];
  if (target === "log" || message.dryRun) {
    log("info", "journey_message_logged", {
      journey: message.journey,
      step: message.step,
      channel: message.channel,
      dryRun: message.dryRun,
    });
    return { ok: true };
  }
  const secret = config[SECRET_KEY[message.channel]] ?? config.WEBHOOK_SECRET;
  if (!secret) return { ok: false, retry: false, reason: "no WEBHOOK_SECRET configured" };
  const body = JSON.stringify({
    key: message.key,
    visitorId: message.visitorId,
    journey: message.journey,
    step: message.step,
    channel: message.channel,
    placement: message.placement,
    sendAt: new Date(message.sendAt).toISOString(),
    rulesVersion: message.rulesVersion,
    decision: message.decision,
    content: message.content,
  });
  const request = new Request(target, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "idempotency-key": message.key,
      [SIGNATURE_HEADER]: await signature(secret, body, Math.floor(Date.now() / 1000)),
    },
    body,
  });
  try {
    const service = env.DESTINATION_SERVICE;
    const res = service ? await service.fetch(request) : await fetch(request);
    await res.body?.cancel();
    if (res.ok) return { ok: true };
    // A 4xx other than timeout and rate limiting says the message itself is refused: retrying cannot help.
    const retry = res.status >= 500 || res.status === 408 || res.status === 429;
    return { ok: false, retry, reason: `destination answered ${res.status}` };
  } catch (err) {
    return { ok: false, retry: true, reason: `destination unreachable: ${String(err)}` };
  }
}

/** The consumer's report of a message's outcome to the person's object (which exports it once). */
function report(
  message: DeliveryMessage,
  outcome: DeliveryReport["outcome"],
  reason: string | null,
): DeliveryReport {
  return {
    key: message.key,
    instance: message.instance,
    journey: message.journey,
    step: message.step,
    channel: message.channel,
    placement: message.placement,
    experience: message.decision.experience,
    variant: message.decision.variant,
    rulesVersion: message.rulesVersion,
    dryRun: message.dryRun,
    outcome,
    reason,
    at: Date.now(),
  };
}

/**
 * A dead letter's outcome told to the person's object. Best effort: the dead letter is kept already,
 * and a throw here would retry a message that is final; a failure is logged and counted.
 */
async function reportDeadLetter(env: Env, message: DeliveryMessage, reason: string): Promise<void> {
  try {
    await visitorObject(env, message.visitorId).deliveryOutcome(report(message, "dead_lettered", reason));
  } catch (err) {
    recordDroppedWrite("delivery_outcome_not_recorded", err);
  }
}

export async function keepDeadLetter(env: Env, letter: DeliveryDeadLetter, key: string): Promise<void> {
  await env.DEAD_LETTERS.put(
    `delivery:${String(letter.at).padStart(15, "0")}:${key}`,
    JSON.stringify(letter),
  );
}

/** Seconds a message over its channel's rate waits before it tries again. */
export const RATE_WAIT_SECONDS = 10;

/**
 * The channel is at its rate (LIMIT_DELIVERY): this message waits its turn, without an attempt's
 * backoff. A retry counts as an attempt, and the queue gives a message up after its last one (the
 * dead-letter queue), so on the last attempt the message goes back on the queue as a new one: a
 * burst above the rate is delivered later, never lost to waiting. (Its count of attempts starts
 * again; only the destination's failures should use them up.)
 */
async function waitForTheRate(
  env: Env,
  config: Config,
  message: Message<unknown>,
  body: DeliveryMessage,
): Promise<void> {
  if (message.attempts < config.DELIVERY_MAX_ATTEMPTS) {
    message.retry({ delaySeconds: RATE_WAIT_SECONDS });
    return;
  }
  try {
    await env.DELIVERY.send(body, { contentType: "json", delaySeconds: RATE_WAIT_SECONDS });
    message.ack();
  } catch (err) {
    // The queue refused the copy: the message is retried, and kept as a dead letter if the queue gives up.
    log("warn", "journey_message_not_requeued", { channel: body.channel, error: String(err) });
    message.retry({ delaySeconds: RATE_WAIT_SECONDS });
  }
}

export async function deliverBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const { config } = readConfig(env);
  for (const message of batch.messages) {
    const parsed = DeliveryMessageSchema.safeParse(message.body);
    if (!parsed.success) {
      await keepDeadLetter(
        env,
        {
          at: Date.now(),
          reason: "not a delivery message",
          attempts: message.attempts,
          message: message.body,
        },
        message.id,
      );
      message.ack();
      continue;
    }
    const body = parsed.data;
    const visitor = visitorObject(env, body.visitorId);
    if (await visitor.delivered(body.key)) {
      message.ack();
      continue;
    }
    const allowed = await env.LIMIT_DELIVERY.limit({ key: body.channel });
    if (!allowed.success) {
      await waitForTheRate(env, config, message, body);
      continue;
    }
    const attempt = await post(env, config, body);
    if (attempt.ok) {
      // Recorded as delivered (so never posted again) and its outcome exported, in one call.
      await visitor.deliveryOutcome(report(body, "delivered", null));
      message.ack();
      continue;
    }
    if (!attempt.retry || message.attempts >= config.DELIVERY_MAX_ATTEMPTS) {
      await keepDeadLetter(
        env,
        { at: Date.now(), reason: attempt.reason, attempts: message.attempts, message: body },
        body.key,
      );
      log("warn", "journey_message_dead", { channel: body.channel, reason: attempt.reason });
      await reportDeadLetter(env, body, attempt.reason);
      message.ack();
      continue;
    }
    message.retry({ delaySeconds: backoffSeconds(message.attempts) });
  }
}

/** The dead-letter queue's consumer: what the delivery queue gave up on is kept with its reason. */
export async function keepDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const parsed = DeliveryMessageSchema.safeParse(message.body);
    const reason = "the delivery queue gave up after its retries (the consumer failed on each)";
    await keepDeadLetter(
      env,
      { at: Date.now(), reason, attempts: message.attempts, message: message.body },
      parsed.success ? parsed.data.key : message.id,
    );
    if (parsed.success) await reportDeadLetter(env, parsed.data, reason);
    message.ack();
  }
}
