/**
 * `northstar/client`: typed clients for a Northstar worker, for apps' servers, email/SMS senders,
 * kiosks, browsers (NorthstarClient) and admin tools (NorthstarAdmin). No runtime dependencies.
 * The types are those the worker validates with (`/_ns/openapi.json` describes the same routes).
 *
 * @example
 * import { NorthstarClient } from "northstar/client";
 *
 * const ns = new NorthstarClient({ baseUrl: "https://shop.example", apiKey: process.env.NORTHSTAR_KEY });
 * const { decisions } = await ns.decide({ userId: "crm-42", channel: "email", placements: ["email-hero"] });
 */
export { NorthstarAdmin, type NorthstarAdminOptions, type RulesReportWithTag } from "./admin.ts";
export type {
  ConsentRequest,
  ConsentResponse,
  DecideRequest,
  DecideResponse,
  DeliveryDeadLetters,
  ErrorBody,
  EventInput,
  EventsRequest,
  EventsResponse,
  ExperimentResults,
  ExplainQuery,
  IdentifyRequest,
  IdentifyResponse,
  JourneysResponse,
  PreviewLink,
  PreviewRequest,
  ProfileErasure,
  ProfileExport,
  ProfileImportResponse,
  ProfileImportRow,
  RulesReport,
  Traits,
  TraitsResponse,
} from "./api-types.ts";
export { NorthstarClient, type NorthstarClientOptions, type Subject } from "./client.ts";
export { type ConnectionOptions, type FetchLike, NorthstarError } from "./transport.ts";
