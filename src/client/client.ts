import type {
  ConsentRequest,
  ConsentResponse,
  DecideRequest,
  DecideResponse,
  EventInput,
  EventsResponse,
  IdentifyRequest,
  IdentifyResponse,
} from "./api-types.ts";
import { type ConnectionOptions, postJson, Transport } from "./transport.ts";

export interface NorthstarClientOptions extends ConnectionOptions {
  /**
   * The SERVER_API_KEY, for servers (apps' backends, email/SMS senders, kiosks): they may name any
   * visitor or person. Leave it out in a browser, which speaks for its own visitor cookie only.
   */
  readonly apiKey?: string;
}

/** Whom events or consent are for: servers name a visitor or a person; browsers send neither. */
export interface Subject {
  readonly visitorId?: string;
  readonly userId?: string;
}

/**
 * The public API of a Northstar worker: decisions, events, identity and consent, typed by the same
 * schemas the worker validates with. An answer other than 2xx rejects with a NorthstarError.
 *
 * @example
 * import { NorthstarClient } from "northstar/client";
 *
 * const ns = new NorthstarClient({ baseUrl: "https://shop.example", apiKey: process.env.NORTHSTAR_KEY });
 * const { decisions } = await ns.decide({ userId: "crm-42", channel: "email", placements: ["email-hero"] });
 * console.log(decisions["email-hero"]?.content.json);
 */
export class NorthstarClient {
  private readonly transport: Transport;

  constructor(options: NorthstarClientOptions) {
    this.transport = new Transport(options, options.apiKey);
  }

  /**
   * Decisions per placement for a person on a channel. Events given here are recorded first and
   * count in this decision. Fails open: when a store fails the answer still comes, with defaults,
   * and `failOpen` says what failed.
   *
   * @example
   * const r = await ns.decide({ userId: "crm-42", channel: "app", placements: ["home-hero"] });
   * r.decisions["home-hero"]?.experience; // "hero-hiker", or null for the placement's default
   */
  decide(request: DecideRequest): Promise<DecideResponse> {
    return this.transport.json(postJson("/v1/decide", request));
  }

  /**
   * Records a batch of up to 100 events. Bad events are refused one by one (`rejected`, by index);
   * the rest are stored. `sentAt` is set to this machine's clock, so the worker corrects its skew.
   *
   * @example
   * await ns.track({ userId: "crm-42" }, [{ id: "order-981", type: "purchase", props: { value: 120 } }]);
   */
  track(subject: Subject, events: EventInput[]): Promise<EventsResponse> {
    return this.transport.json(postJson("/v1/events", { ...subject, sentAt: Date.now(), events }));
  }

  /**
   * Links an anonymous visitor to a known person; their histories merge. A browser sends a token
   * signed by the site's backend (`{ token }`); a server with the API key sends both ids.
   *
   * @example
   * await ns.identify({ anonymousId: "k3Jd8sPq0aZ1xY2w", userId: "crm-42" }); // server
   * await browserClient.identify({ token });                                 // browser, after login
   */
  identify(request: IdentifyRequest): Promise<IdentifyResponse> {
    return this.transport.json(postJson("/v1/identify", request));
  }

  /**
   * Grants or withdraws consent per purpose (`personalization`, `measurement`, `marketing`).
   *
   * @example
   * await ns.consent({ userId: "crm-42", purposes: { marketing: false } });
   */
  consent(request: ConsentRequest): Promise<ConsentResponse> {
    return this.transport.json(postJson("/v1/consent", request));
  }
}
