import type { ErrorBody } from "./api-types.ts";

/**
 * What the client needs of `fetch`: the global one in browsers, Node ≥ 18, Deno, Bun and Workers,
 * or your own (a service binding's, a test's). Declared here rather than as `typeof fetch` so the
 * package's types need neither the DOM library nor @types/node.
 */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
) => Promise<{
  readonly ok: boolean;
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

/** Where Northstar answers, and how to reach it. */
export interface ConnectionOptions {
  /** The site Northstar fronts, e.g. `https://shop.example` (its routes are under `prefix`). */
  readonly baseUrl: string;
  /** Where Northstar's own routes live on that site (the worker's NS_PREFIX). Default `/_ns`. */
  readonly prefix?: string;
  /** Default: the global `fetch`. */
  readonly fetch?: FetchLike;
}

/**
 * An answer other than 2xx (or 304 where asked for): the status and Northstar's JSON error body,
 * whose `error` is a code to switch on and whose `issues` name each bad field of a 400. An answer
 * that is not Northstar's JSON (a proxy's HTML error page) gets `error: "unexpected_response"`.
 * Network failures are not wrapped: they reject with `fetch`'s own error.
 *
 * @example
 * try {
 *   await ns.decide({ visitorId: "not-an-id" });
 * } catch (err) {
 *   if (err instanceof NorthstarError && err.body.error === "invalid_request") console.log(err.body.issues);
 * }
 */
export class NorthstarError extends Error {
  readonly status: number;
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody) {
    super(`${status} ${body.error}${body.message ? `: ${body.message}` : ""}`);
    this.name = "NorthstarError";
    this.status = status;
    this.body = body;
  }
}

function errorBodyOf(text: string): ErrorBody {
  try {
    const json: unknown = JSON.parse(text);
    if (json && typeof json === "object" && typeof (json as { error?: unknown }).error === "string")
      return json as ErrorBody;
  } catch {
    // Not JSON: described below.
  }
  return { error: "unexpected_response", message: text.slice(0, 200) };
}

export interface Call {
  readonly method: "GET" | "POST" | "PUT" | "DELETE";
  /** Relative to the prefix, with its query: `/v1/explain?visitorId=…`. */
  readonly path: string;
  readonly body?: string;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One place where requests are made and answers read, shared by the app and admin clients. */
export class Transport {
  private readonly base: string;
  private readonly authorization: string | null;
  private readonly fetcher: FetchLike;

  constructor(options: ConnectionOptions, secret: string | undefined) {
    this.base = `${options.baseUrl.replace(/\/+$/, "")}${options.prefix ?? "/_ns"}`;
    this.authorization = secret ? `Bearer ${secret}` : null;
    // Bound: a bare `fetch` called as a method of this object throws "Illegal invocation" in browsers.
    this.fetcher = options.fetch ?? ((url, init) => globalThis.fetch(url, init));
  }

  /** The answer's JSON; `null` for a 304 (asked for with If-None-Match); a NorthstarError otherwise. */
  async send<T>(call: Call): Promise<{ value: T | null; headers: { get(name: string): string | null } }> {
    const headers: Record<string, string> = { accept: "application/json", ...call.headers };
    if (this.authorization) headers.authorization = this.authorization;
    if (call.body !== undefined) headers["content-type"] = call.contentType ?? "application/json";
    const res = await this.fetcher(`${this.base}${call.path}`, {
      method: call.method,
      headers,
      ...(call.body !== undefined ? { body: call.body } : {}),
    });
    if (res.status === 304) return { value: null, headers: res.headers };
    const text = await res.text();
    if (!res.ok) throw new NorthstarError(res.status, errorBodyOf(text));
    try {
      return { value: JSON.parse(text) as T, headers: res.headers };
    } catch {
      throw new NorthstarError(res.status, { error: "unexpected_response", message: text.slice(0, 200) });
    }
  }

  async json<T>(call: Call): Promise<T> {
    const { value } = await this.send<T>(call);
    if (value === null) throw new NorthstarError(304, { error: "unexpected_response", message: "304" });
    return value;
  }
}

export function postJson(path: string, body: unknown): Call {
  return { method: "POST", path, body: JSON.stringify(body) };
}

/** A path segment: ids such as `user:ana@example.com` are sent escaped (the worker decodes them). */
export function segment(id: string): string {
  return encodeURIComponent(id);
}
