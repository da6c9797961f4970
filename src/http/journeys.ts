import type { Hono } from "hono";
import * as z from "zod";
import { DeliveryDeadLetterSchema } from "../journeys/message.ts";
import { parseStoredJson } from "../state/stored-value.ts";
import { visitorObject } from "../state/visitor-object.ts";
import { requireAdmin } from "./admin.ts";
import type { AppContext, AppEnv } from "./app-env.ts";
import { jsonError } from "./errors.ts";
import { documentRoute } from "./openapi.ts";
import { idParam } from "./profiles.ts";
import { storeCall, storeUnavailableDoc } from "./store-calls.ts";

/**
 * The journeys' admin routes (docs/journeys.md): a person's journeys, the step each is on and why
 * each message was or was not sent (consent, cap, quiet hours waited for, exited), cancelling one,
 * and the delivery dead letters.
 */

const JourneyViewSchema = z.strictObject({
  instance: z.string().describe("the Workflows instance running this entry"),
  journey: z.string(),
  enteredAt: z.number(),
  status: z.enum(["running", "ended", "cancelled"]),
  step: z.string().describe("the step it is on, or ended at"),
  reason: z.string().describe("why it ended (empty while running)"),
  updatedAt: z.number(),
  messages: z.array(
    z.strictObject({
      key: z.string().describe("the Idempotency-Key the destination receives"),
      step: z.string(),
      at: z.number(),
      channel: z.string().nullable(),
      outcome: z.enum(["reserved", "delivered", "refused"]),
      reason: z.string().describe("why it was not sent: consent, cap, erased, cancelled, exited"),
    }),
  ),
  log: z
    .array(z.strictObject({ step: z.string(), at: z.number(), what: z.string(), detail: z.string() }))
    .describe("what the entry did, step by step: the explanation of a message sent or not"),
});
export const JourneysResponseSchema = z.strictObject({ journeys: z.array(JourneyViewSchema) });
export type JourneysResponse = z.infer<typeof JourneysResponseSchema>;
export const JourneyCancelResponseSchema = z.strictObject({ cancelled: z.boolean() });
export const DeadLettersResponseSchema = z.strictObject({
  deadLetters: z.array(DeliveryDeadLetterSchema.extend({ id: z.string() })),
});
export type DeadLettersResponse = z.infer<typeof DeadLettersResponseSchema>;

async function listJourneys(c: AppContext): Promise<Response> {
  const id = await idParam(c);
  if (id instanceof Response) return id;
  const journeys = await storeCall(c, () => visitorObject(c.env, id).journeys());
  if (journeys instanceof Response) return journeys;
  const status = c.req.query("status");
  return c.json({ journeys: status ? journeys.filter((j) => j.status === status) : journeys });
}

/** Cancels one entry: the object refuses its later steps and sends, and the instance is stopped. */
async function cancelJourney(c: AppContext): Promise<Response> {
  const id = await idParam(c);
  if (id instanceof Response) return id;
  const instance = c.req.param("instance") ?? "";
  const cancelled = await storeCall(c, () => visitorObject(c.env, id).cancelJourney(instance, Date.now()));
  if (cancelled instanceof Response) return cancelled;
  if (!cancelled) return jsonError("not_found", "no running journey with this instance id for this person");
  try {
    await (await c.env.JOURNEYS.get(instance)).terminate();
  } catch {
    // Already ended, or not started yet: its next step finds the entry cancelled and ends.
  }
  return c.json({ cancelled: true });
}

async function listDeadLetters(c: AppContext): Promise<Response> {
  const listed = await storeCall(c, async () => {
    const { keys } = await c.env.DEAD_LETTERS.list({ prefix: "delivery:", limit: 100 });
    const letters = await Promise.all(
      keys.map(async (key) => {
        const letter = parseStoredJson(
          DeliveryDeadLetterSchema,
          await c.env.DEAD_LETTERS.get(key.name),
          "kv.dead_letter",
        );
        return letter ? { id: key.name, ...letter } : null;
      }),
    );
    return letters.filter((letter) => letter !== null);
  });
  if (listed instanceof Response) return listed;
  return c.json({ deadLetters: listed });
}

export function registerJourneyRoutes(api: Hono<AppEnv>): void {
  api.use("/v1/journeys/*", requireAdmin);
  api.get("/v1/profiles/:id/journeys", listJourneys);
  api.post("/v1/profiles/:id/journeys/:instance/cancel", cancelJourney);
  api.get("/v1/journeys/dead-letters", listDeadLetters);

  documentRoute({
    method: "get",
    path: "/v1/profiles/{id}/journeys",
    operationId: "listJourneys",
    tag: "admin",
    admin: true,
    summary: "A person's journeys: the step each is on, its messages and why each was or was not sent",
    params: { id: "a visitor id, a canonical id (u_…) or user:<userId>" },
    responses: {
      200: {
        description: "every entry, running or ended (?status=running for the active ones)",
        schema: JourneysResponseSchema,
      },
      400: { description: "not a Northstar visitor id" },
      503: storeUnavailableDoc("read"),
    },
  });
  documentRoute({
    method: "post",
    path: "/v1/profiles/{id}/journeys/{instance}/cancel",
    operationId: "cancelJourney",
    tag: "admin",
    admin: true,
    summary: "Cancel one of a person's running journeys: nothing more is sent, its instance is stopped",
    params: {
      id: "a visitor id, a canonical id (u_…) or user:<userId>",
      instance: "the entry's instance id",
    },
    responses: {
      200: { description: "cancelled", schema: JourneyCancelResponseSchema },
      404: { description: "no running journey with this instance id for this person" },
      503: storeUnavailableDoc("write"),
    },
  });
  documentRoute({
    method: "get",
    path: "/v1/journeys/dead-letters",
    operationId: "listDeliveryDeadLetters",
    tag: "admin",
    admin: true,
    summary: "Messages that could not be delivered, oldest first, with the reason (the first 100)",
    responses: {
      200: { description: "the dead letters", schema: DeadLettersResponseSchema },
      503: storeUnavailableDoc("read"),
    },
  });
}
