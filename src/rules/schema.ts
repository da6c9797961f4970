import * as z from "zod";
import { PLACEMENT_ACTIONS } from "../core/compiled-rules.ts";
import { MAX_RANKED } from "../core/ranking.ts";
import { REDIRECT_HOST_PATTERN } from "../core/url-policy.ts";
import { DURATION_PATTERN } from "./duration.ts";
import { journeySchemas } from "./journey-schema.ts";

/**
 * The rules document, v1. This zod schema is the single source of truth: the JSON Schema in
 * rules/schema.json is generated from it (`npm run rules -- schema`) and a test fails on drift.
 * Semantic checks that a schema cannot express (references, weights, reachability, selectors)
 * live in validate.ts.
 */
export const SCHEMA_ID = "https://northstar.dev/schemas/rules/v1.json";
export const MAJOR_VERSION = 1;

const Id = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "ids are lowercase letters, digits, - and _ (max 64)")
  // Ids become keys of lookup tables: a name every object inherits ("constructor", "valueOf") is refused.
  .refine((id) => !(id in Object.prototype), "this id is reserved");
const Duration = z.string().regex(DURATION_PATTERN, 'a duration such as "90s", "30m", "12h", "7d"');
const EventType = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,63}$/, "event types are snake_case")
  .refine((t) => !(t in Object.prototype), "this event type is reserved");
/** A dotted path into the evaluation scope: traits.*, context.*, visitor.*, event.* (signals). */
const Path = z
  .string()
  .regex(
    /^(traits|context|visitor|event|intent)(\.[A-Za-z0-9_-]+)+$/,
    "a path such as traits.tier or context.geo.country",
  )
  .refine((p) => !/(^|\.)(__proto__|constructor|prototype)(\.|$)/.test(p), "path uses a forbidden segment");

export const COMPARISON_OPS = [
  "eq",
  "neq",
  "lt",
  "lte",
  "gt",
  "gte",
  "in",
  "contains",
  "startsWith",
  "endsWith",
  "exists",
  "between",
  "matches",
  "semverEq",
  "semverGt",
  "semverGte",
  "semverLt",
  "semverLte",
  "olderThan",
  "within",
] as const;
export type ComparisonOp = (typeof COMPARISON_OPS)[number];
const CountOp = z.enum(["eq", "gte", "gt", "lte", "lt"]);

export type Condition =
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition }
  | { ref: string }
  | { segment: string }
  | { op: ComparisonOp; path: string; value?: unknown }
  | {
      countWithin: {
        event: string;
        window: string;
        where?: { path: string; op: ComparisonOp; value?: unknown };
      };
      op: z.infer<typeof CountOp>;
      value: number;
    }
  | {
      rate: {
        of: string;
        per: string;
        within: string;
        gte?: number;
        gt?: number;
        lte?: number;
        lt?: number;
        minCount?: number;
      };
    }
  | { silence: { after: string; without: string[]; for: string; within?: string } }
  | { inactive: { for: string } }
  | { intent: { dimension?: string; top?: string; above?: number } }
  | { affinity: { tag: string; min?: number } }
  | { preferredChannel: string }
  | { consent: string }
  | { experiment: string; variant?: string }
  | { timeOfDay: { from: string; to: string } }
  | { dayOfWeek: number[] };

/**
 * A campaign's start or end: an ISO 8601 instant with its offset ("2026-11-27T00:00:00+01:00"), so
 * the rule says which midnight it means; a local time without an offset would be nobody's midnight.
 */
const Instant = z.iso.datetime({ offset: true });

/** When an experience or experiment runs: from startAt (inclusive) to endAt (exclusive). */
const CampaignDates = {
  startAt: Instant.optional().describe("absent: already started; an instant with its offset"),
  endAt: Instant.optional().describe("absent: never ends; after startAt"),
};

/** Types a marketer adds to the default lists of src/core/event-sides.ts; each type in one list only. */
const EventTypeList = z.array(EventType).max(200);
const EventSidesSchema = z
  .strictObject({
    visits: EventTypeList.optional().describe(
      "the person on the site or in the app: these start sessions (default page_view, screen_view, app_open, product_view, search, add_to_cart, purchase)",
    ),
    brandSends: EventTypeList.optional().describe(
      "what the brand sent: never the person's activity (default email_, sms_, push_ send/sent/delivered)",
    ),
    responses: EventTypeList.optional().describe(
      "the person answering a message: activity, not a visit (default email_open, email_click, sms_click, push_open, …)",
    ),
  })
  .superRefine((sides, ctx) => {
    const listed = new Map<string, string>();
    for (const list of ["visits", "brandSends", "responses"] as const) {
      for (const type of sides[list] ?? []) {
        const earlier = listed.get(type);
        if (earlier && earlier !== list)
          ctx.addIssue({ code: "custom", path: [list], message: `${type} is already listed in ${earlier}` });
        listed.set(type, list);
      }
    }
  });

/** A bound on a rate (`of` events per `per` event): a share such as 0.5; repeats can take it above 1. */
const RateBound = z.number().min(0);

const HourMinute = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time such as "08:30"');

export const ConditionSchema: z.ZodType<Condition> = z.lazy(() =>
  z.union([
    z.strictObject({ all: z.array(ConditionSchema).min(1) }),
    z.strictObject({ any: z.array(ConditionSchema).min(1) }),
    z.strictObject({ not: ConditionSchema }),
    z.strictObject({ ref: Id.describe("a named condition from `conditions`") }),
    z.strictObject({ segment: Id.describe("a segment id") }),
    z.strictObject({ op: z.enum(COMPARISON_OPS), path: Path, value: z.unknown().optional() }),
    z.strictObject({
      countWithin: z.strictObject({
        event: EventType,
        window: Duration,
        where: z
          .strictObject({ path: Path, op: z.enum(COMPARISON_OPS), value: z.unknown().optional() })
          .optional(),
      }),
      op: CountOp,
      value: z.number().int().min(0),
    }),
    z.strictObject({
      rate: z.strictObject({
        of: EventType.describe("the events counted, e.g. email_open"),
        per: EventType.describe("the events they are a share of, e.g. email_send"),
        within: Duration.describe("both are counted in this window; at most settings.historyDays"),
        gte: RateBound.optional(),
        gt: RateBound.optional(),
        lte: RateBound.optional(),
        lt: RateBound.optional(),
        minCount: z
          .number()
          .int()
          .min(1)
          .optional()
          .describe("fewer `per` events than this in the window: false (default 1, so 1 of 1 is not 100%)"),
      }),
    }),
    z.strictObject({
      silence: z.strictObject({
        after: EventType.describe("the event that starts the clock, e.g. add_to_cart"),
        without: z.array(EventType).min(1).describe("events that end it, e.g. purchase"),
        for: Duration.describe("how long the silence must last"),
        within: Duration.optional().describe("ignore starting events older than this"),
      }),
    }),
    z.strictObject({ inactive: z.strictObject({ for: Duration }) }),
    z.strictObject({
      intent: z.strictObject({ dimension: Id.optional(), top: Id.optional(), above: z.number().optional() }),
    }),
    z.strictObject({
      affinity: z.strictObject({ tag: z.string().min(1).max(64), min: z.number().int().min(1).optional() }),
    }),
    z.strictObject({ preferredChannel: z.string().min(1).max(32) }),
    z.strictObject({ consent: z.string().min(1).max(64) }),
    z.strictObject({ experiment: Id, variant: Id.optional() }),
    z.strictObject({ timeOfDay: z.strictObject({ from: HourMinute, to: HourMinute }) }),
    z.strictObject({ dayOfWeek: z.array(z.number().int().min(0).max(6)).min(1) }),
  ]),
);

/** What a content shows from a list: its best items for this visitor (src/core/ranking.ts). */
const RankedItemsSchema = z.strictObject({
  from: Id.describe("a list from `lists`"),
  top: z
    .number()
    .int()
    .min(1)
    .max(MAX_RANKED)
    .default(3)
    .describe(`how many items to show, the best first (at most ${MAX_RANKED})`),
  lastCategoryFirst: z
    .boolean()
    .default(false)
    .describe("items of the category the visitor browsed last come first, then by affinity"),
});

export const ContentSchema = z.strictObject({
  html: z
    .string()
    .max(64 * 1024)
    .optional()
    .describe("HTML fragment; {{ }} values are HTML-escaped"),
  json: z.unknown().optional().describe("payload for apps and messages; {{ }} strings are rendered"),
  redirect: z.string().max(2048).optional().describe("for redirect placements: a path or URL"),
  attribute: z.string().max(1024).optional().describe("for set_attribute placements: the value"),
  items: RankedItemsSchema.optional().describe(
    "a ranked list: the visitor's top items of a list, rendered by {{#each items}}…{{/each}} and answered in the decision",
  ),
});
export type Content = z.infer<typeof ContentSchema>;

export const PlacementSchema = z.strictObject({
  description: z.string().optional(),
  selector: z.string().optional().describe("CSS selector for the web; absent for app-only placements"),
  action: z.enum(PLACEMENT_ACTIONS).default("replace_content"),
  attribute: z
    .string()
    .regex(/^[a-zA-Z_:][-a-zA-Z0-9_:.]*$/)
    .optional(),
  pages: z
    .array(
      z
        .string()
        .max(512)
        .regex(/^(\*|\/[^\s*]*(\/\*)?)$/, 'a path "/x", a prefix "/x/*", or "*"'),
    )
    .min(1)
    .max(50)
    .default(["*"])
    .describe('"/", "/running", "/running/*", "*"'),
  group: Id.optional().describe(
    "placements sharing a group never both show a non-default experience on one page",
  ),
  pick: z.enum(["priority", "score"]).default("priority"),
  default: ContentSchema.nullable().default(null).describe("null keeps the origin's content"),
  ttl: z.number().int().min(0).default(300).describe("seconds an app may cache the decision"),
});

/** A text, number or yes/no an item shows: `{{ item.title }}`, `{{ item.price }}`. */
const ItemField = z.union([z.string().max(2048), z.number(), z.boolean()]);

/**
 * One candidate of a ranked list. Its own fields (title, url, image, price…) are any other keys,
 * read in templates as `{{ item.<key> }}`.
 */
export const ListItemSchema = z
  .object({
    id: Id,
    category: z
      .string()
      .min(1)
      .max(64)
      .optional()
      .describe("ranked first for a visitor who browsed this category last, with lastCategoryFirst"),
    tags: z
      .array(z.string().min(1).max(64))
      .max(32)
      .default([])
      .describe("content tags: the visitor's affinity for them ranks the item"),
    audience: ConditionSchema.optional().describe("absent: everyone; else listed only for those who match"),
  })
  .catchall(ItemField);
export type ListItem = z.infer<typeof ListItemSchema>;

const ListSchema = z.strictObject({
  description: z.string().optional(),
  items: z.array(ListItemSchema).min(1).max(200),
});

const Cap = z.strictObject({ max: z.number().int().min(1), per: Duration });

export const ExperienceSchema = z.strictObject({
  id: Id,
  description: z.string().optional(),
  placement: Id,
  audience: ConditionSchema.optional().describe("absent: everyone"),
  priority: z.number().int().default(0),
  scoreBy: Id.optional().describe("with pick=score: the intent dimension that ranks this experience"),
  content: ContentSchema.optional(),
  experiment: Id.optional(),
  variants: z.record(Id, ContentSchema).optional().describe("content per variant when tied to an experiment"),
  caps: z.array(Cap).default([]),
  suppressAfter: z.array(z.strictObject({ event: EventType, within: Duration })).default([]),
  channels: z.array(z.string()).optional().describe("limit to these channels"),
  ...CampaignDates,
});

/** The experiment id under which the global holdout (settings.globalHoldout) is stored and reported. */
export const GLOBAL_HOLDOUT = "global-holdout";

/** Where a goal event carries its value (revenue): a path into its props. */
const PropsPath = z
  .string()
  .regex(/^props(\.[A-Za-z0-9_-]+)+$/, 'a path into the event\'s props, such as "props.value"')
  .refine((p) => !/(^|\.)(__proto__|constructor|prototype)(\.|$)/.test(p), "path uses a forbidden segment");

/** A conversion an experiment is measured on: counted once per visitor, its value summed per visitor. */
export const GoalSchema = z.strictObject({
  id: Id.describe(
    "the goal's name in the results; the experiment's `goal` may name it to make it the primary goal",
  ),
  event: EventType.describe("the event type that reaches the goal"),
  value: PropsPath.optional().describe(
    "where the event carries its value (revenue), e.g. props.value; summed per visitor; absent: the goal has no value",
  ),
  window: Duration.optional().describe(
    "counted only this long after the visitor's first exposure; absent: any time while the experiment runs",
  ),
});
export type Goal = z.infer<typeof GoalSchema>;

/** At most this many goals per experiment: each is a counter per arm in every shard. */
export const MAX_GOALS = 10;

const Goals = z
  .array(GoalSchema)
  .max(MAX_GOALS)
  .optional()
  .describe(
    "conversions measured besides the primary goal (and the primary goal's value or window, by its id)",
  );

/**
 * An experiment layer: experiments that share its visitors, so that a visitor is in at most one of
 * them (docs/rules.md, Layers; the split is specified in docs/bucketing.md).
 */
export const LayerSchema = z.strictObject({
  description: z.string().optional(),
  seed: z
    .string()
    .min(1)
    .max(128)
    .describe("hash seed of the layer's split; not the seed of another layer or of any experiment"),
});

/** Where an experiment sits in its layer: a share of the layer's visitors, from a start. */
export const ExperimentLayerSchema = z.strictObject({
  id: Id.describe("a layer from `layers`"),
  share: z
    .number()
    .gt(0)
    .max(1)
    .optional()
    .describe(
      "the fraction of the layer's visitors in this experiment (0.01% steps); absent: an equal part of what the layer's experiments with a share leave",
    ),
  from: z
    .number()
    .min(0)
    .lt(1)
    .optional()
    .describe(
      "where its part of the layer starts, 0 to 1; absent: where the layer's previous experiment (in document order) ends. Set it to keep visitors in place when an earlier experiment is removed",
    ),
});

export const ExperimentSchema = z.strictObject({
  description: z.string().optional(),
  seed: z.string().min(1).max(128).describe("hash seed, independent of the id"),
  variants: z.array(z.strictObject({ id: Id, weight: z.number().min(0) })).min(1),
  holdout: z.number().min(0).max(1).optional().describe("fraction held out; defaults to settings.holdout"),
  goal: EventType.describe(
    "the primary goal: the id of one of `goals`, else an event type counted once per visitor with no value or window",
  ),
  goals: Goals,
  status: z.enum(["running", "paused", "stopped"]).default("running"),
  layer: ExperimentLayerSchema.optional().describe(
    "share a layer's visitors with its other experiments: a visitor is in one of them at most",
  ),
  ...CampaignDates,
});

/** Journeys (src/rules/journey-schema.ts), from the same primitives as everything else here. */
const Journeys = journeySchemas({ Id, Duration, EventType, HourMinute, Condition: ConditionSchema });
export const JourneySchema = Journeys.Journey;
export type Journey = z.infer<typeof JourneySchema>;
export type JourneyStep = Journey["steps"][number];

export const RulesDocumentSchema = z.strictObject({
  $schema: z.string().optional(),
  version: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  meta: z
    .strictObject({
      environment: z.string().optional(),
      generatedAt: z.string().optional(),
      gitSha: z.string().optional(),
      description: z.string().optional(),
    })
    .default({}),
  settings: z
    .strictObject({
      holdout: z.number().min(0).max(1).default(0),
      allowKnownMerge: z.boolean().default(false),
      historyDays: z
        .number()
        .int()
        .min(1)
        .max(400)
        .default(30)
        .describe(
          "days of event history a countWithin may read; must not exceed the deployment's EVENT_LOG_MAX_AGE_DAYS",
        ),
      traitMerge: z.record(z.string(), z.enum(["mostRecent", "oldest", "add", "firstNonEmpty"])).default({}),
      redirectHosts: z
        .array(
          z
            .string()
            .max(261)
            .regex(
              REDIRECT_HOST_PATTERN,
              'a lowercase host, with a port when not the default: "help.example.com"',
            ),
        )
        .max(100)
        .optional()
        .describe(
          "hosts other than the site's own that redirect placements may send visitors to; absent: paths on this site and its own host only",
        ),
      globalHoldout: z
        .strictObject({
          fraction: z
            .number()
            .min(0)
            .max(0.5)
            .describe("share of visitors who get no personalization at all"),
          seed: z.string().min(1).max(128).describe("hash seed, independent of everything else"),
          goal: EventType.default("purchase").describe(
            "the conversion the whole program is measured on: the id of one of `goals`, else an event type",
          ),
          goals: Goals,
        })
        .optional()
        .describe(
          "a program-wide control group: these visitors see every placement's default, and GET /v1/experiments/global-holdout compares them with everyone else",
        ),
      affinity: z
        .strictObject({
          halfLife: Duration.describe("an event's weight for its tags halves this often, like intent"),
        })
        .optional()
        .describe(
          "content affinity (the affinity condition, ranked lists, {{ affinity.top }}); absent: every recent event counts fully",
        ),
      eventSides: EventSidesSchema.optional().describe(
        "event types to add to the visits, brand sends or responses lists (docs/rules.md, Visits, sends and responses)",
      ),
      messaging: Journeys.Messaging.describe(
        "limits every journey shares: a frequency cap per person, quiet hours, dry run (docs/journeys.md)",
      ),
    })
    .default({
      holdout: 0,
      allowKnownMerge: false,
      historyDays: 30,
      traitMerge: {},
      messaging: { cap: { max: 2, per: "1d" }, dryRun: false },
    }),
  dimensions: z
    .record(Id, z.strictObject({ halfLife: Duration, cap: z.number().positive().default(100) }))
    .default({}),
  signals: z
    .array(
      z.strictObject({
        id: Id,
        event: EventType,
        when: ConditionSchema.optional().describe("over event.* (type, props.*) and context"),
        add: z.record(Id, z.number()),
      }),
    )
    .default([]),
  conditions: z.record(Id, ConditionSchema).default({}),
  segments: z
    .record(Id, z.strictObject({ description: z.string().optional(), condition: ConditionSchema }))
    .default({}),
  placements: z.record(Id, PlacementSchema).default({}),
  experiences: z.array(ExperienceSchema).default([]),
  experiments: z.record(Id, ExperimentSchema).default({}),
  journeys: z
    .record(Id, JourneySchema)
    .default({})
    .describe(
      "messages sent on the person's behaviour, at their hour, through their channel (docs/journeys.md)",
    ),
  // Optional, not defaulted: a default would enter the canonical JSON and change the hash of every
  // version published before layers existed, which the loader would then refuse as tampered.
  layers: z
    .record(Id, LayerSchema)
    .optional()
    .describe("experiment layers: experiments naming the same layer never share a visitor"),
  // Optional for the same reason: every version published before lists existed keeps its hash.
  lists: z
    .record(Id, ListSchema)
    .optional()
    .describe("candidates for ranked lists (content items.from): products, articles, offers"),
});

export type RulesDocument = z.infer<typeof RulesDocumentSchema>;
export type RulesDocumentInput = z.input<typeof RulesDocumentSchema>;
export type Placement = z.infer<typeof PlacementSchema>;
export type Experience = z.infer<typeof ExperienceSchema>;
export type Experiment = z.infer<typeof ExperimentSchema>;
export type Layer = z.infer<typeof LayerSchema>;
export type ExperimentLayer = z.infer<typeof ExperimentLayerSchema>;

/** The JSON Schema editors use (referenced by "$schema" in every rules file). */
export function rulesJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(RulesDocumentSchema, { target: "draft-2020-12", io: "input" }) as Record<
    string,
    unknown
  >;
  return { ...schema, $id: SCHEMA_ID, title: "Northstar rules v1" };
}
