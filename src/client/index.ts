import type * as z from "zod";
import type {
  ConsentRequestSchema,
  DecideRequest,
  DecideResponse,
  EventInput,
  EventsResponse,
} from "../http/schemas.ts";

/**
 * A typed client for apps, email/SMS senders and kiosks: the same shapes the worker validates
 * (`/_ns/openapi.json` describes them too). Server-side callers pass the SERVER_API_KEY.
 *
 * @example
 * const ns = new NorthstarClient({ baseUrl: "https://shop.example", apiKey: process.env.NORTHSTAR_KEY });
 * const { decisions } = await ns.decide({ userId: "crm-42", channel: "email", placements: ["email-hero"] });
 */
export type { DecideRequest, DecideResponse, EventInput, EventsResponse };

export interface NorthstarClientOptions {
  readonly baseUrl: string;
  readonly apiKey?: string;
  readonly prefix?: string;
  readonly fetch?: typeof fetch;
}

export interface ErrorBody {
  readonly error: string;
  readonly message?: string;
  readonly issues?: ReadonlyArray<{ readonly path: string; readonly message: string }>;
}

export class NorthstarError extends Error {
  readonly status: number;
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody) {
    super(`${status} ${body.error}${body.message ? `: ${body.message}` : ""}`);
    this.status = status;
    this.body = body;
  }
}

export class NorthstarClient {
  private readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly fetcher: typeof fetch;

  constructor(options: NorthstarClientOptions) {
    this.base = `${options.baseUrl.replace(/\/$/, "")}${options.prefix ?? "/_ns"}`;
    this.headers = {
      "content-type": "application/json",
      ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
    };
    this.fetcher = options.fetch ?? fetch;
  }

  private async post<T>(path: string, body: unknown): Promise<T> {
    const res = await this.fetcher(`${this.base}${path}`, {
      method: "POST",
      headers: this.headers,
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as T;
    if (!res.ok) throw new NorthstarError(res.status, json as ErrorBody);
    return json;
  }

  /** Decisions for a person on a channel; events given here are recorded first and count. */
  decide(request: DecideRequest): Promise<DecideResponse> {
    return this.post("/v1/decide", request);
  }

  track(subject: { visitorId?: string; userId?: string }, events: EventInput[]): Promise<EventsResponse> {
    return this.post("/v1/events", { ...subject, sentAt: Date.now(), events });
  }

  identify(anonymousId: string, userId: string): Promise<{ visitorId: string; merged: boolean }> {
    return this.post("/v1/identify", { anonymousId, userId });
  }

  consent(request: z.input<typeof ConsentRequestSchema>): Promise<{ consent: Record<string, boolean> }> {
    return this.post("/v1/consent", request);
  }
}
