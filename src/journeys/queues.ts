import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { deliverBatch, keepDeadLetters } from "./delivery.ts";

/**
 * The worker's queue consumers, told apart by the queue's name (wrangler.toml: `<worker>-delivery`
 * and its dead-letter queue `<worker>-delivery-dlq`, one pair per environment). A queue this worker
 * does not know is retried, never acknowledged: its messages are not ours to drop.
 */
export async function consumeQueue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  if (batch.queue.endsWith("-delivery-dlq")) return keepDeadLetters(batch, env);
  if (batch.queue.endsWith("-delivery")) return deliverBatch(batch, env);
  log("error", "queue_unknown", { queue: batch.queue });
  batch.retryAll();
}
