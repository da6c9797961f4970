import type {
  DecideResponse,
  DeliveryDeadLetters,
  ExperimentResults,
  ExplainQuery,
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
import { type ConnectionOptions, postJson, segment, Transport } from "./transport.ts";

export interface NorthstarAdminOptions extends ConnectionOptions {
  /** The worker's ADMIN_TOKEN. Keep it on servers and in tools: it reads and erases anyone's data. */
  readonly adminToken: string;
}

/** The rules report with its ETag, to ask later whether anything changed. */
export interface RulesReportWithTag extends RulesReport {
  /** The serving version's content hash as an entity tag; null while refreshes fail. */
  readonly etag: string | null;
}

/**
 * Northstar's admin routes: profiles (export, erase, traits, import), explanations, rules status,
 * experiment results and preview links. Every call needs the admin token; an answer other than 2xx
 * rejects with a NorthstarError (401 `unauthorized` for a wrong token).
 *
 * A person is named by a visitor id, a canonical id (`u_…`) or `user:<userId>`.
 *
 * @example
 * import { NorthstarAdmin } from "northstar/client";
 *
 * const admin = new NorthstarAdmin({ baseUrl: "https://shop.example", adminToken: process.env.NORTHSTAR_ADMIN });
 * const results = await admin.experiment("hero-test");
 * console.log(results.report.note);
 */
export class NorthstarAdmin {
  private readonly transport: Transport;

  constructor(options: NorthstarAdminOptions) {
    this.transport = new Transport(options, options.adminToken);
  }

  /**
   * Everything held on a person: traits, consent, state, aliases, dead letters, experiment rows.
   * Rejects with 404 `not_found` when nothing is held.
   *
   * @example
   * const held = await admin.exportProfile("user:crm-42");
   */
  exportProfile(id: string): Promise<ProfileExport> {
    return this.transport.json({ method: "GET", path: `/v1/profiles/${segment(id)}` });
  }

  /**
   * Erases a person everywhere (with every id linked to them) and suppresses them: later events
   * and identifications of them are refused.
   *
   * @example
   * await admin.eraseProfile("user:crm-42"); // { erased: true, aliases: 2 }
   */
  eraseProfile(id: string): Promise<ProfileErasure> {
    return this.transport.json({ method: "DELETE", path: `/v1/profiles/${segment(id)}` });
  }

  /**
   * A person's journeys: the step each is on, its messages, and the log that explains why each was
   * or was not sent (consent, cap, quiet hours, exited). `running` lists only the active ones.
   *
   * @example
   * const { journeys } = await admin.journeys("user:crm-42", { running: true });
   */
  journeys(id: string, options: { running?: boolean } = {}): Promise<JourneysResponse> {
    const query = options.running ? "?status=running" : "";
    return this.transport.json({ method: "GET", path: `/v1/profiles/${segment(id)}/journeys${query}` });
  }

  /** Cancels one of a person's running journeys (by its instance id): nothing more is sent. */
  cancelJourney(id: string, instance: string): Promise<{ cancelled: boolean }> {
    return this.transport.json({
      method: "POST",
      path: `/v1/profiles/${segment(id)}/journeys/${segment(instance)}/cancel`,
    });
  }

  /** Messages that could not be delivered, with the reason (the first 100). */
  deliveryDeadLetters(): Promise<DeliveryDeadLetters> {
    return this.transport.json({ method: "GET", path: "/v1/journeys/dead-letters" });
  }

  /**
   * Sets a person's traits from a CRM or warehouse: merged into those held, or replacing them
   * with `{ mode: "replace" }`. Rejects with 410 `suppressed` for an erased person.
   *
   * @example
   * await admin.setTraits("user:crm-42", { tier: "gold", lifetimeValue: 1200 });
   */
  setTraits(
    id: string,
    traits: Traits,
    options: { mode?: "merge" | "replace" } = {},
  ): Promise<TraitsResponse> {
    const query = options.mode === "replace" ? "?mode=replace" : "";
    return this.transport.json({
      method: "PUT",
      path: `/v1/profiles/${segment(id)}/traits${query}`,
      body: JSON.stringify(traits),
    });
  }

  /**
   * Imports traits in bulk: rows, or NDJSON text (one `{ id, traits }` per line). At most 250
   * distinct ids and 10 MB per call; refused lines come back by line number, the rest are written.
   *
   * @example
   * const { written, errors } = await admin.importProfiles([{ id: "user:crm-42", traits: { tier: "gold" } }]);
   */
  importProfiles(rows: ReadonlyArray<ProfileImportRow> | string): Promise<ProfileImportResponse> {
    const body = typeof rows === "string" ? rows : rows.map((row) => JSON.stringify(row)).join("\n");
    return this.transport.json({
      method: "POST",
      path: "/v1/profiles/import",
      body,
      contentType: "application/x-ndjson",
    });
  }

  /**
   * Why a person gets what they get: the decision with every candidate per placement and why it
   * won or lost (`explanation`).
   *
   * @example
   * const why = await admin.explain({ userId: "crm-42", url: "https://shop.example/" });
   */
  explain(query: ExplainQuery): Promise<DecideResponse> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, value);
    return this.transport.json({ method: "GET", path: `/v1/explain?${params}` });
  }

  /**
   * The rules the worker serves (version, content hash, KV or bundled) and its last refresh error.
   *
   * @example
   * const { version, lastError } = await admin.rules();
   */
  async rules(): Promise<RulesReportWithTag> {
    const { value, headers } = await this.transport.send<RulesReport>({ method: "GET", path: "/v1/rules" });
    return { ...value!, etag: headers.get("etag") };
  }

  /**
   * The rules report when it differs from the one tagged `etag` (from an earlier `rules()`), else
   * null: a cheap poll.
   *
   * @example
   * const changed = await admin.rulesIfChanged(last.etag);
   */
  async rulesIfChanged(etag: string): Promise<RulesReportWithTag | null> {
    const { value, headers } = await this.transport.send<RulesReport>({
      method: "GET",
      path: "/v1/rules",
      headers: { "if-none-match": etag },
    });
    return value === null ? null : { ...value, etag: headers.get("etag") };
  }

  /**
   * An experiment's results: exposures and conversions per arm, rates with 95% intervals, uplift
   * against the control, a sample-ratio check and a sentence saying what can be concluded; per goal
   * (`goals`) the same with value per visitor, per ISO week (`weekly`) and per day (`daily`).
   * `global-holdout` reports the programme's holdout against everyone personalized.
   *
   * @example
   * const { report } = await admin.experiment("hero-test");
   */
  experiment(id: string): Promise<ExperimentResults> {
    return this.transport.json({ method: "GET", path: `/v1/experiments/${segment(id)}` });
  }

  /**
   * A signed link that opens a page with chosen experiences forced (and explained), for review.
   *
   * @example
   * const { url } = await admin.preview({ path: "/", forced: { "home-hero": { experience: "hero-hiker" } } });
   */
  preview(request: PreviewRequest = {}): Promise<PreviewLink> {
    return this.transport.json(postJson("/v1/preview", request));
  }
}
