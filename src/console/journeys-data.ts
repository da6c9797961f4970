import * as z from "zod";
import { DEAD_LETTERS_SHOWN } from "../http/journeys.ts";
import { api, type ConsoleCall, type Fetched } from "./data.ts";

export { DEAD_LETTERS_SHOWN };

/**
 * The journeys' side of the console: a person's journeys, cancelling one, and the delivery dead
 * letters, each through the journeys' admin routes in-process (as `data.ts` does for the rest), so
 * cancelling here is exactly the API's cancel: the entry refused by the visitor's object, the
 * instance stopped.
 */

const JourneyEntryView = z.looseObject({
  instance: z.string(),
  journey: z.string(),
  enteredAt: z.number(),
  status: z.string(),
  step: z.string(),
  reason: z.string(),
  messages: z.array(
    z.looseObject({
      key: z.string(),
      step: z.string(),
      at: z.number(),
      channel: z.string().nullable(),
      outcome: z.string(),
      reason: z.string(),
    }),
  ),
  log: z.array(z.looseObject({ step: z.string(), at: z.number(), what: z.string(), detail: z.string() })),
});
export type JourneyEntryView = z.infer<typeof JourneyEntryView>;

const JourneysView = z.looseObject({ journeys: z.array(JourneyEntryView) });

const path = (id: string) => `/v1/profiles/${encodeURIComponent(id)}/journeys`;

/** Every journey entry of a person, running or ended. */
export async function personJourneys(call: ConsoleCall, id: string): Promise<Fetched<JourneyEntryView[]>> {
  const got = await api(call, path(id), JourneysView);
  return got.ok ? { ok: true, value: got.value.journeys } : got;
}

/** Cancels one running entry: the admin route's own logic. */
export function cancelJourney(
  call: ConsoleCall,
  id: string,
  instance: string,
): Promise<Fetched<{ cancelled: boolean }>> {
  return api(
    call,
    `${path(id)}/${encodeURIComponent(instance)}/cancel`,
    z.looseObject({ cancelled: z.boolean() }),
    {
      method: "POST",
    },
  );
}

/** What the dead-letters page draws of a message: the rest of it stays in the API's answer. */
const LetterMessage = z.looseObject({
  visitorId: z.string().optional(),
  journey: z.string().optional(),
  step: z.string().optional(),
  channel: z.string().optional(),
  key: z.string().optional(),
});

const DeadLetterView = z.looseObject({
  id: z.string(),
  at: z.number(),
  reason: z.string(),
  attempts: z.number(),
  // A letter kept because its message was unreadable carries whatever arrived: drawn as unknown.
  message: z.unknown().transform((m) => {
    const known = LetterMessage.safeParse(m);
    return known.success ? known.data : {};
  }),
});
export type DeadLetterView = z.infer<typeof DeadLetterView>;

/** The newest delivery dead letters (the API answers at most 100), newest first. */
export async function deadLetters(call: ConsoleCall): Promise<Fetched<DeadLetterView[]>> {
  const got = await api(
    call,
    "/v1/journeys/dead-letters",
    z.looseObject({ deadLetters: z.array(DeadLetterView) }),
  );
  return got.ok ? { ok: true, value: got.value.deadLetters } : got;
}
