import { readConfig } from "../platform/config.ts";
import { callerOf, resolveCanonical, subjectOf } from "../state/identity.ts";
import { issueVisitorId, visitorCookieHeader } from "../state/visitor-id.ts";
import type { AppContext } from "./app-env.ts";
import { jsonError } from "./errors.ts";
import { storeRead } from "./store-calls.ts";

/** Who a write speaks for: the canonical id, any cookie to set, and whether the visitor is new. */
export interface Subject {
  readonly id: string;
  readonly setCookie: string | null;
  readonly isNew: boolean;
}

/**
 * Resolves who a request speaks for: a server (API key) names a visitor or user; a browser is its
 * signed cookie, and a new visitor gets one. Returns the canonical id, any cookie to set, and
 * whether the visitor is new (a browser without a valid cookie).
 */
export async function subjectFor(
  c: AppContext,
  body: { visitorId?: string | undefined; userId?: string | undefined },
): Promise<Subject | Response> {
  const caller = await callerOf(c.req.raw, c.env);
  const { config } = readConfig(c.env);
  if (caller.kind === "server") {
    // The body's schema already checked the visitor id's shape (VisitorIdSchema, as on every route).
    // A visitor id's alias is read under the read deadline; past it the id as given serves (its own
    // object forwards to the person it was merged into), so a slow KV does not hold up a write.
    const read = await storeRead(c, "kv", () => subjectOf(body, c.env));
    const id = read.ok ? read.value : (body.visitorId ?? null);
    return id
      ? { id, setCookie: null, isNew: false }
      : jsonError("invalid_request", "visitorId or userId is required", {
          issues: [{ path: "visitorId", message: "server calls name a visitorId or a userId" }],
        });
  }
  if (body.visitorId || body.userId) {
    return jsonError("forbidden", "browsers may only send events for their own visitor (the cookie)");
  }
  if (caller.visitorId) {
    const visitorId = caller.visitorId;
    const read = await storeRead(c, "kv", () => resolveCanonical(c.env, visitorId));
    return { id: read.ok ? read.value : visitorId, setCookie: null, isNew: false };
  }
  // No cookie, or a tampered one: a new visitor.
  if (!config.COOKIE_SECRET) return jsonError("cookies_disabled", "COOKIE_SECRET is not configured");
  const id = issueVisitorId();
  return { id, setCookie: await visitorCookieHeader(id, config), isNew: true };
}

/** The response, carrying the new visitor's cookie when there is one. */
export function withCookie(response: Response, cookie: string | null): Response {
  if (cookie) response.headers.append("set-cookie", cookie);
  return response;
}
