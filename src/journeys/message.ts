import * as z from "zod";

/**
 * A journey's message on its way to a destination: the body of the DELIVERY queue's messages, written
 * by a send step and read by the delivery consumer with this same schema. Its `key` (the instance id
 * and the step) is the Idempotency-Key end to end: the visitor's object reserves it once, the consumer
 * records it once delivered, and the destination dedupes by it.
 */
export const DeliveryMessageSchema = z.object({
  key: z.string().min(1).max(200),
  visitorId: z.string().min(1),
  journey: z.string(),
  instance: z.string(),
  step: z.string(),
  channel: z.enum(["sms", "push", "email"]),
  placement: z.string(),
  /** When the journey sent it (its own clock: the person's hour, after quiet hours). */
  sendAt: z.number(),
  rulesVersion: z.string(),
  dryRun: z.boolean(),
  /** The decision for the placement, as the decision API gives it. */
  decision: z.object({
    experience: z.string().nullable(),
    variant: z.string().nullable(),
    reason: z.string(),
  }),
  content: z.object({ html: z.string().nullable(), json: z.unknown() }),
});
export type DeliveryMessage = z.infer<typeof DeliveryMessageSchema>;

/** A message that could not be delivered, as DEAD_LETTERS keeps it (key `delivery:<at>:<key>`). */
export const DeliveryDeadLetterSchema = z.object({
  at: z.number(),
  reason: z.string(),
  attempts: z.number(),
  message: z.unknown(),
});
export type DeliveryDeadLetter = z.infer<typeof DeliveryDeadLetterSchema>;
