import * as z from "zod";

/**
 * Journeys in the rules (docs/journeys.md): what starts one for a person, the steps it walks, what
 * ends it early, when the same person may enter again, and the limits every journey shares
 * (settings.messaging). Built from the rules' own primitives, which schema.ts passes in, so this
 * module and schema.ts do not import each other round a circle.
 */

/** The outbound channels a send step can use; each names the placement whose decision is the message. */
export const MESSAGE_CHANNELS = ["sms", "push", "email"] as const;
export type MessageChannel = (typeof MESSAGE_CHANNELS)[number];

interface Primitives<Condition> {
  readonly Id: z.ZodType<string>;
  readonly Duration: z.ZodType<string>;
  readonly EventType: z.ZodType<string>;
  readonly HourMinute: z.ZodType<string>;
  readonly Condition: z.ZodType<Condition>;
}

export function journeySchemas<Condition>(p: Primitives<Condition>) {
  const Trigger = z.union([
    z.strictObject({
      event: p.EventType.describe("an event of this type starts the journey"),
      where: p.Condition.optional().describe("over event.* and the person: only events that match"),
    }),
    z.strictObject({ segment: p.Id.describe("entering this segment starts the journey") }),
    z.strictObject({
      condition: p.Condition.describe(
        "this condition becoming true (a silence or an inactivity) starts the journey; checked as events arrive and on the person's schedule",
      ),
    }),
  ]);
  const StepId = p.Id.describe("the step's name: unique in the journey, shown by the admin API");
  const Step = z.union([
    z.strictObject({ id: StepId, wait: p.Duration.describe("wait this long") }),
    z.strictObject({
      id: StepId,
      waitUntil: z.literal("bestHour").describe("wait for the next occurrence of the person's best hour"),
    }),
    z.strictObject({
      id: StepId,
      waitForEvent: z.strictObject({
        event: p.EventType,
        timeout: p.Duration,
        onEvent: z.enum(["continue", "exit"]).default("continue"),
        onTimeout: z.enum(["continue", "exit"]).default("continue"),
      }),
    }),
    z.strictObject({
      id: StepId,
      branch: z.strictObject({
        if: p.Condition,
        goTo: p.Id.describe("when true: a later step of this journey"),
        otherwise: p.Id.optional().describe("when false: a later step; absent: the next step"),
      }),
    }),
    z.strictObject({
      id: StepId,
      send: z.strictObject({
        via: z
          .array(
            z.strictObject({
              channel: z.enum(MESSAGE_CHANNELS),
              placement: p.Id.describe("the placement whose decision is the message, e.g. sms-text"),
            }),
          )
          .min(1)
          .max(MESSAGE_CHANNELS.length)
          .describe(
            "the channels this message may go through: the person's preferred one first, then this order",
          ),
        bestHourWithin: p.Duration.default("24h").describe(
          'wait for the person\'s best hour when it comes within this; "0s": send now (quiet hours still hold)',
        ),
      }),
    }),
    z.strictObject({
      id: StepId,
      setTrait: z.strictObject({
        name: z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/),
        value: z.union([z.string().max(1024), z.number(), z.boolean(), z.null()]),
      }),
    }),
    z.strictObject({ id: StepId, exit: z.literal(true) }),
  ]);

  const Journey = z.strictObject({
    description: z.string().optional(),
    status: z.enum(["active", "paused"]).default("active").describe("paused: nobody new enters"),
    trigger: Trigger,
    steps: z.array(Step).min(1).max(50),
    exitOn: z
      .strictObject({
        events: z.array(p.EventType).max(20).default([]).describe("any of these, at any step, ends it"),
        condition: p.Condition.optional().describe("true at any step ends it, e.g. a suppression segment"),
      })
      .default({ events: [] }),
    reentry: z
      .union([z.literal("never"), z.strictObject({ after: p.Duration })])
      .default("never")
      .describe("whether a person who entered may enter again, and how long after entering"),
    dryRun: z.boolean().default(false).describe("messages go to the log destination only"),
  });

  const Messaging = z
    .strictObject({
      cap: z
        .strictObject({ max: z.number().int().min(1).max(100), per: p.Duration })
        .default({ max: 2, per: "1d" })
        .describe("messages per person across all journeys"),
      quietHours: z
        .strictObject({ from: p.HourMinute, to: p.HourMinute })
        .optional()
        .describe("in the person's zone: a message due in these hours waits for their end"),
      dryRun: z.boolean().default(false).describe("every journey sends to the log destination only"),
    })
    .default({ cap: { max: 2, per: "1d" }, dryRun: false });

  return { Journey, Messaging, Step, Trigger };
}
