import type * as z from "zod";
import type { Consent, VisitorState } from "../core/model.ts";
import type { PreviewRequestSchema } from "../http/admin-routes.ts";
import type { EventImportResponseSchema } from "../http/backfill.ts";
import type { ExplainQuerySchema } from "../http/decide.ts";
import type { ExperimentResultsSchema } from "../http/experiment-results.ts";
import type { DeadLettersResponseSchema, JourneysResponseSchema } from "../http/journeys.ts";
import type { ErrorBodySchema } from "../http/openapi.ts";
import type { TraitsSchema } from "../http/profiles.ts";
import type {
  ConsentRequestSchema,
  DecideRequestSchema,
  DecideResponseSchema,
  EventSchema,
  EventsRequestSchema,
  EventsResponseSchema,
  IdentifyRequestSchema,
} from "../http/schemas.ts";
import type { ExposureRow } from "../measure/experiment-object.ts";
import type { LoadedRules, RulesStatus } from "../state/rules-loader.ts";
import type { DeadLetter, JourneyRecord } from "../state/visitor-object.ts";

/**
 * The shapes the client speaks, derived from the schemas the worker validates with and the types its
 * routes answer with. This module is not shipped: scripts/client-types.ts prints each type below,
 * fully expanded, into api-types.ts, so the package's declarations need neither zod nor the worker's
 * modules. Requests are the schemas' input (defaults optional), responses their output.
 *
 * Routes whose answer has no schema are described here from the values they are built of; the
 * envelope around those values is the one place written by hand (keep it beside its route).
 */

/** One event, by its canonical names (`ts`, `props`); the worker fills `channel` and `props`. */
export type EventInput = z.input<(typeof EventSchema)["out"]>;

/** A decision request: a server names `visitorId` or `userId`; a browser is its own cookie. */
export type DecideRequest = Omit<z.input<typeof DecideRequestSchema>, "events"> & {
  /** Recorded first, and counted in this decision. */
  events?: EventInput[];
};
export type DecideResponse = z.output<typeof DecideResponseSchema>;

/** A batch of events for one visitor or person (servers name them; a browser is its cookie). */
export type EventsRequest = Omit<z.input<typeof EventsRequestSchema>, "events"> & { events: EventInput[] };
export type EventsResponse = z.output<typeof EventsResponseSchema>;

/** Either a token signed by the site's backend (browsers), or, with the server key, both ids. */
export type IdentifyRequest = z.input<typeof IdentifyRequestSchema>;
/** src/http/identify.ts: the person's id from now on; whether an anonymous history was merged. */
export interface IdentifyResponse {
  visitorId: string;
  merged: boolean;
  mergedEvents: number;
  /** A browser that carried another known person's id now belongs to this one; nothing merged. */
  switched?: true;
  /** False when the privacy gate refused the link (nothing stored or set); `reason` says why. */
  linked: boolean;
  reason?: "erased" | "gpc" | "consent" | null;
}

export type ConsentRequest = z.input<typeof ConsentRequestSchema>;
/** src/http/events.ts: the consent now held, per purpose. */
export interface ConsentResponse {
  consent: Consent;
}

/**
 * The body of every error answer: a code to switch on (Northstar's closed set, or, made by the client,
 * `unexpected_response` for an answer that was not Northstar's JSON), and each bad field of a 400.
 */
export type ErrorBody = Omit<z.output<typeof ErrorBodySchema>, "error"> & {
  error: z.output<typeof ErrorBodySchema>["error"] | "unexpected_response";
};

/** Query of GET /v1/explain: whose decision (`visitorId` or `userId`), on which page and channel. */
export type ExplainQuery = z.input<typeof ExplainQuerySchema>;

export type Traits = z.input<typeof TraitsSchema>;
/** src/http/profiles.ts: the traits now held. */
export interface TraitsResponse {
  id: string;
  traits: Traits;
}

/** One line of an import: a visitor id, a canonical id (`u_…`) or `user:<userId>`, and its traits. */
export interface ProfileImportRow {
  id: string;
  traits: Traits;
}
/** src/http/profiles.ts: how many people were written; each refused line by number (from 1). */
export interface ProfileImportResponse {
  written: number;
  errors: Array<{ line: number; message: string }>;
}

/**
 * One line of an event import (a backfill of older history): a visitor id, a canonical id (`u_…`)
 * or `user:<userId>`, and the event, which must say when it happened (`ts` or `timestamp`).
 */
export interface EventImportRow {
  id: string;
  event: EventInput;
}
/** src/http/backfill.ts: each line accepted, duplicate or refused with why, per person. */
export type EventImportResponse = z.output<typeof EventImportResponseSchema>;

/** src/http/profiles.ts: everything held on a person. */
export interface ProfileExport {
  id: string;
  aliases: string[];
  traits: Traits;
  consent: Consent;
  state: VisitorState | null;
  deadLetters: DeadLetter[];
  mergedFrom: string[];
  experiments: Array<{ experiment: string } & ExposureRow>;
  /** Each journey entry: its step and status, its messages (what was sent, delivered when) and its log. */
  journeys: JourneyRecord[];
}
/** src/http/profiles.ts: erased, with how many linked ids went with the person. */
export interface ProfileErasure {
  erased: true;
  aliases: number;
}

/** src/http/journeys.ts: a person's journeys, the step each is on, and why each message was or was not sent. */
export type JourneysResponse = z.output<typeof JourneysResponseSchema>;
/** src/http/journeys.ts: the delivery dead letters, with their reasons. */
export type DeliveryDeadLetters = z.output<typeof DeadLettersResponseSchema>;

/** src/http/admin-routes.ts: the rules the worker serves, and how its last refresh went. */
export interface RulesReport {
  version: LoadedRules["version"] | null;
  hash: LoadedRules["hash"] | null;
  source: LoadedRules["source"] | null;
  /** ISO 8601. */
  loadedAt: string | null;
  /** ISO 8601. */
  checkedAt: string | null;
  lastError: RulesStatus["lastError"];
}

/**
 * src/http/experiment-results.ts: an experiment's arms with intervals, its holdout, every goal's
 * rate and value per visitor with uplift, the same per ISO week, a daily series, and which shards
 * answered.
 */
export type ExperimentResults = z.output<typeof ExperimentResultsSchema>;

export type PreviewRequest = z.input<typeof PreviewRequestSchema>;
/** src/http/admin-routes.ts: a signed preview link. */
export interface PreviewLink {
  token: string;
  url: string;
  expiresInSeconds: number;
}
