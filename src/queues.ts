import { consumeExport } from "./export/consumer.ts";
import { deliverBatch, keepDeadLetters } from "./journeys/delivery.ts";
import type { Env } from "./platform/env.ts";
import { log } from "./platform/log.ts";

/**
 * The worker's one queue() handler routes each batch by the queue it came from (`batch.queue`,
 * the queue's name in wrangler.toml). A new consumer adds its queue's name here.
 */
type Consumer = (batch: MessageBatch, env: Env, ctx: ExecutionContext) => Promise<void>;

export const CONSUMERS: Readonly<Record<string, Consumer>> = {
  "northstar-export": (batch, env) => consumeExport(batch, env),
  // Journeys' messages (docs/journeys.md): delivery, and what its dead-letter queue receives.
  "northstar-delivery": (batch, env) => deliverBatch(batch, env),
  "northstar-delivery-dlq": (batch, env) => keepDeadLetters(batch, env),
};

export async function handleQueue(batch: MessageBatch, env: Env, ctx: ExecutionContext): Promise<void> {
  const consumer = Object.hasOwn(CONSUMERS, batch.queue) ? CONSUMERS[batch.queue] : undefined;
  if (!consumer) {
    // A queue bound to this worker with no consumer here: kept (retried, then dead-lettered), not lost.
    log("error", "queue_unrouted", { queue: batch.queue, messages: batch.messages.length });
    batch.retryAll();
    return;
  }
  await consumer(batch, env, ctx);
}
