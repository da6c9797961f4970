import * as z from "zod";
import { LOSS_REASONS, REASONS, TIMEZONE_SOURCES } from "../core/decide.ts";
import { FirstPageFieldSchema } from "../edge/first-page.ts";
import { VISITOR_ID_PATTERN } from "../state/visitor-id.ts";

/** The API's request and response shapes: validated by the routes, described by /_ns/openapi.json. */

export const EVENT_TYPE = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * The ids every route reads, one schema each, so two routes cannot disagree on what an id is.
 * Visitor ids are the cookie's pattern (a known person's `u_` + 32 hex, or an anonymous id that
 * never starts with `u_`); user ids are the site's own, opaque.
 */
export const VisitorIdSchema = z.string().regex(VISITOR_ID_PATTERN, "not a Northstar visitor id");
export const USER_ID_MAX = 256;
export const UserIdSchema = z.string().min(1).max(USER_ID_MAX);
/**
 * An id from the rules (experiments, placements), as src/rules/schema.ts spells them. A name every
 * object inherits ("constructor", "valueOf") is never one: ids index lookup tables.
 */
export const RuleIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "ids are lowercase letters, digits, - and _ (max 64)")
  .refine((id) => !Object.hasOwn(Object.prototype, id), "this id is reserved");
export const ExperimentIdSchema = RuleIdSchema;
export const PlacementIdSchema = RuleIdSchema;

/** The sender's clock when it sent the request: event times are shifted by (received − sentAt). */
const SentAtSchema = z
  .number()
  .int()
  .positive()
  .optional()
  .describe("sender clock at send time (epoch ms), to correct skew");

/**
 * Names other pipelines use (Segment, RudderStack): `timestamp` for `ts` (epoch ms, or an ISO 8601
 * date-time with its offset) and `properties` for `props`. Stored and exported under the canonical
 * names, `ts` and `props`; an event giving both names of one field is rejected, not guessed.
 */
const EVENT_ALIASES = [
  ["timestamp", "ts"],
  ["properties", "props"],
] as const;
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;

function canonicalEventNames(raw: unknown, ctx: z.core.$RefinementCtx): unknown {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return raw;
  const event = raw as Record<string, unknown>;
  if (!EVENT_ALIASES.some(([alias]) => Object.hasOwn(event, alias))) return raw;
  const out: Record<string, unknown> = { ...event };
  for (const [alias, name] of EVENT_ALIASES) {
    if (!Object.hasOwn(out, alias)) continue;
    if (Object.hasOwn(out, name)) {
      ctx.addIssue({ code: "custom", path: [alias], message: `give either ${name} or ${alias}, not both` });
      return raw;
    }
    out[name] = out[alias];
    delete out[alias];
  }
  const ts = out.ts;
  if (Object.hasOwn(event, "timestamp") && typeof ts === "string") {
    const ms = ISO_DATE_TIME.test(ts) ? Date.parse(ts) : Number.NaN;
    if (Number.isNaN(ms)) {
      ctx.addIssue({
        code: "custom",
        path: ["timestamp"],
        message: "epoch milliseconds, or an ISO 8601 date-time with an offset (2026-11-22T10:00:00Z)",
      });
      return raw;
    }
    out.ts = ms;
  }
  return out;
}

const EventObjectSchema = z.strictObject({
  id: z.string().min(1).max(128).describe("unique per visitor: replays with the same id are ignored"),
  type: z
    .string()
    .regex(EVENT_TYPE, "event types are snake_case, e.g. add_to_cart")
    .describe(
      "page_view, product_view, add_to_cart, purchase, search, email_open, email_click, sms_click… or any snake_case type",
    ),
  ts: z
    .number()
    .int()
    .positive()
    .optional()
    .describe("epoch ms on the sender's clock; default: received time (alias: timestamp, also ISO 8601)"),
  channel: z
    .string()
    .regex(/^[a-z_]{1,32}$/)
    .default("web"),
  props: z
    .record(z.string().max(128), z.unknown())
    .default({})
    .describe("event properties (alias: properties)"),
});

/** One event: canonical names `ts` and `props`; `timestamp` and `properties` are read as aliases. */
export const EventSchema = z.preprocess(canonicalEventNames, EventObjectSchema);
export type EventInput = z.infer<typeof EventSchema>;

export const EventsRequestSchema = z.strictObject({
  visitorId: VisitorIdSchema.optional().describe("server senders only; browsers use their cookie"),
  userId: UserIdSchema.optional().describe("server senders only: a known person's id"),
  sentAt: SentAtSchema,
  events: z
    .array(z.unknown())
    .min(1)
    .max(100)
    .describe(
      "each { id, type, ts?, channel?, props? }, checked one by one (rejections by index); timestamp and properties are read as aliases of ts and props",
    ),
  firstPage: FirstPageFieldSchema.optional(),
});

export const EventsResponseSchema = z.object({
  accepted: z.number(),
  duplicates: z.number(),
  stored: z.number(),
  reason: z
    .enum(["gpc", "consent"])
    .optional()
    .describe("why nothing was stored: the request's Sec-GPC: 1, or consent the person has not given"),
  rejected: z.array(
    z.object({ index: z.number(), issues: z.array(z.object({ path: z.string(), message: z.string() })) }),
  ),
});
export type EventsResponse = z.infer<typeof EventsResponseSchema>;

export const IdentifyRequestSchema = z.union([
  z.strictObject({
    token: z.string().min(1).max(1024).describe("identity token signed by the site's backend"),
  }),
  z.strictObject({
    anonymousId: VisitorIdSchema.describe("server senders: the anonymous visitor to link"),
    userId: UserIdSchema,
  }),
]);

export const ConsentRequestSchema = z.strictObject({
  visitorId: VisitorIdSchema.optional(),
  userId: UserIdSchema.optional(),
  purposes: z.partialRecord(
    z.enum([
      "personalization",
      "measurement",
      "marketing",
      "marketing_email",
      "marketing_sms",
      "marketing_push",
    ]),
    z.boolean(),
  ),
});

export const ContextInputSchema = z.strictObject({
  url: z.url().optional(),
  path: z.string().startsWith("/").optional(),
  referrer: z.string().max(2048).optional(),
  locale: z.string().max(35).optional(),
  device: z.enum(["mobile", "tablet", "desktop", "unknown"]).optional(),
  country: z.string().length(2).optional(),
  timezone: z.string().max(64).optional(),
  query: z.record(z.string(), z.string()).optional(),
  custom: z.record(z.string(), z.unknown()).optional(),
});

export const DecideRequestSchema = z.strictObject({
  visitorId: VisitorIdSchema.optional(),
  userId: UserIdSchema.optional(),
  channel: z
    .string()
    .regex(/^[a-z_]{1,32}$/)
    .default("app"),
  context: ContextInputSchema.default({}),
  placements: z.array(PlacementIdSchema).max(50).optional(),
  sentAt: SentAtSchema,
  events: z
    .array(z.unknown())
    .max(100)
    .optional()
    .describe("recorded first, and counted in this decision; checked as POST /v1/events checks them"),
  explain: z
    .boolean()
    .default(false)
    .describe("server key or admin token only: ignored for browsers, which get no explanation"),
  segments: z
    .boolean()
    .default(true)
    .describe(
      "list the visitor's named segments in `segments` (every segment of the rules is evaluated for it); false answers [] and skips that work, which no decision needs",
    ),
});
export type DecideRequest = z.input<typeof DecideRequestSchema>;

/** One item of a ranked list, as the page renders it: its own fields, ranked. */
export const RankedItemSchema = z
  .object({
    id: z.string(),
    category: z.string().nullable(),
    rank: z.number().int().describe("1 for the best"),
    score: z.number().describe("the visitor's affinity for the item's tags, as it was ranked by"),
  })
  .catchall(z.union([z.string(), z.number(), z.boolean(), z.null()]))
  .describe("the item's own fields (title, url, price…) beside these");

export const DecisionSchema = z.object({
  experience: z.string().nullable(),
  variant: z.string().nullable(),
  reason: z
    .enum([...REASONS, "FAILED_OPEN"])
    .describe("FAILED_OPEN: no rules could be loaded; show the placement's own default"),
  ruleIndex: z
    .number()
    .int()
    .nullable()
    .describe("the winning experience's index in the rules document's `experiences` (null: none won)"),
  content: z.object({
    html: z.string().nullable(),
    json: z.unknown(),
    items: z
      .array(RankedItemSchema)
      .optional()
      .describe(
        "a ranked list (content `items` in the rules): this visitor's items, best first, as the page shows them",
      ),
  }),
  ttl: z.number(),
});

export const CandidateTraceSchema = z.object({
  experience: z.string(),
  ruleIndex: z.number().int().describe("the experience's index in the rules document's `experiences`"),
  outcome: z.enum(["won", ...LOSS_REASONS]),
  detail: z
    .string()
    .nullable()
    .describe("which condition failed, what it lost to, or why it was not evaluated"),
});

export const DecideResponseSchema = z.object({
  visitorId: z.string(),
  rulesVersion: z.string().nullable(),
  decisions: z.record(z.string(), DecisionSchema),
  segments: z
    .array(z.string())
    .describe("the visitor's named segments; [] when the request said `segments: false`"),
  intent: z.object({ top: z.string().nullable(), scores: z.record(z.string(), z.number()) }),
  outbound: z
    .object({
      channel: z.string().nullable(),
      hour: z
        .number()
        .int()
        .nullable()
        .describe("0–23 in `timezone`: the hour this person engages most (null until there is enough)"),
      timezone: z
        .string()
        .describe('the IANA zone `hour` is in, e.g. "Europe/Paris" ("UTC" when none is known)'),
      timezoneSource: z
        .enum(TIMEZONE_SOURCES)
        .describe(
          "where the zone came from, tried in this order: the request's context.timezone, the person's timezone trait, the zone their latest event named (props.tz), else utc",
        ),
    })
    .nullable()
    .describe("outbound channels (email, sms, push) only: which channel and when to send"),
  unknownPlacements: z.array(z.string()),
  failOpen: z
    .array(z.enum(["rules", "rules-bundled", "do-error", "do-timeout", "kv-error", "kv-timeout"]))
    .describe(
      "empty when every store answered; otherwise what failed, and the decisions fell back to what was known (also in the x-northstar-fail-open header)",
    ),
  explanation: z
    .record(z.string(), z.array(CandidateTraceSchema))
    .optional()
    .describe("server key or admin only, when asked: every candidate per placement, in the order tried"),
});
export type DecideResponse = z.infer<typeof DecideResponseSchema>;
