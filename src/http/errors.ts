import type * as z from "zod";

/** The one shape of every error Northstar answers with: a code a program can switch on, and details. */
export interface ErrorBody {
  readonly error: string;
  readonly message?: string;
  readonly issues?: ReadonlyArray<{ readonly path: string; readonly message: string }>;
}

export function jsonError(
  status: number,
  error: string,
  message?: string,
  extra?: Partial<ErrorBody>,
): Response {
  const body: ErrorBody = { error, ...(message ? { message } : {}), ...extra };
  return Response.json(body, { status, headers: { "cache-control": "no-store" } });
}

/** zod issues → `{ path, message }` with a dotted path (`events.3.type`), the 400 body of every route. */
export function issuesOf(error: z.ZodError): Array<{ path: string; message: string }> {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join(".") || "(body)",
    message: issue.message,
  }));
}

export function invalidRequest(error: z.ZodError): Response {
  return jsonError(400, "invalid_request", "the request does not match the API", { issues: issuesOf(error) });
}
