import type * as z from "zod";

/**
 * Every error code Northstar answers with, and its status: the one place a status comes from, so
 * two routes cannot answer the same failure differently (a closed set, as flagd's error codes).
 */
export const ERROR_STATUS = {
  invalid_json: 400,
  invalid_request: 400,
  too_deep: 400,
  forbidden_key: 400,
  unauthorized: 401,
  forbidden: 403,
  invalid_token: 403,
  not_found: 404,
  unknown_experiment: 404,
  already_linked: 409,
  suppressed: 410,
  payload_too_large: 413,
  import_too_large: 413,
  rate_limited: 429,
  internal_error: 500,
  admin_disabled: 503,
  cookies_disabled: 503,
  identity_disabled: 503,
  /** A store (KV, a Durable Object) did not answer in time or failed: nothing was stored; retry (Retry-After). */
  store_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;
export type ErrorStatus = (typeof ERROR_STATUS)[ErrorCode];

/** One bad field: a dotted JSON path (`events.3.type`, `(body)` for the whole body) and what is wrong. */
export interface Issue {
  readonly path: string;
  readonly message: string;
}

/** The one shape of every error Northstar answers with: a code a program can switch on, and details. */
export interface ErrorBody {
  readonly error: ErrorCode;
  readonly message?: string;
  readonly issues?: ReadonlyArray<Issue>;
}

/** The codes answered with 400: bad input, which always names what was bad. */
export type BadRequestCode = {
  [K in ErrorCode]: (typeof ERROR_STATUS)[K] extends 400 ? K : never;
}[ErrorCode];

type Extra = Omit<ErrorBody, "error" | "message">;

/**
 * The error response for `code`, its status from ERROR_STATUS. A 400 must name its issues: the
 * type asks for them, so no route can answer "bad request" without saying what was bad.
 *
 * @example return jsonError("invalid_request", "visitorId or userId is required", { issues: [{ path: "visitorId", message: "required" }] });
 */
export function jsonError<C extends ErrorCode>(
  code: C,
  message: string,
  ...extra: C extends BadRequestCode ? [Extra & { readonly issues: ReadonlyArray<Issue> }] : [Extra?]
): Response {
  const body: ErrorBody = { error: code, ...(message ? { message } : {}), ...extra[0] };
  return Response.json(body, { status: ERROR_STATUS[code], headers: { "cache-control": "no-store" } });
}

/** zod issues → `{ path, message }` with a dotted path (`events.3.type`), the 400 body of every route. */
export function issuesOf(error: z.ZodError, prefix = ""): Issue[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    return {
      path: prefix && path ? `${prefix}.${path}` : prefix || path || "(body)",
      message: issue.message,
    };
  });
}

export function invalidRequest(error: z.ZodError): Response {
  return jsonError("invalid_request", "the request does not match the API", { issues: issuesOf(error) });
}
