import { routePath } from "hono/route";
import { readConfig } from "../platform/config.ts";
import { type Deadline, withDeadline } from "../platform/deadline.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import type { AppContext } from "./app-env.ts";
import { jsonError } from "./errors.ts";
import type { ResponseDoc } from "./openapi.ts";

/**
 * Every store call an API route makes (KV, the visitor's and the experiments' Durable Objects) runs
 * under a deadline, so no route can hang on a store. The deadlines are multiples of STORE_DEADLINE_MS
 * (the pages' deadline, 50 ms by default):
 * - `read` (4×, 200 ms): a read the answer can do without, named in its `failOpen` list (as decide's);
 * - `write` (40×, 2 s): a write, or a read the answer cannot do without (a write's precondition, an
 *   experiment's counts); past it the route answers 503;
 * - `bulk` (200×, 10 s): an admin route's work over many ids (erasure of a person and their aliases,
 *   a traits or an event import), past which what is left is reported as not done.
 */
export const STORE_DEADLINE_MULTIPLES = { read: 4, write: 40, bulk: 200 } as const;
export type StoreWork = keyof typeof STORE_DEADLINE_MULTIPLES;

/** How long a client waits before it retries a write no store took (`Retry-After`, seconds). */
export const STORE_RETRY_AFTER_SECONDS = 2;

export function storeDeadlineMs(env: Env, work: StoreWork): number {
  return readConfig(env).config.STORE_DEADLINE_MS * STORE_DEADLINE_MULTIPLES[work];
}

/** Which store failed and how, in the words of decide's `failOpen` and the fail-open header. */
export type StoreFailure = `${"kv" | "do"}-${"timeout" | "error"}`;

/** The route's pattern, never its path (paths carry ids and emails): what a log line may name. */
function logFailure(
  c: AppContext,
  reason: "timeout" | "error",
  error: string | undefined,
  store?: "kv" | "do",
) {
  log("warn", "store_failed", {
    method: c.req.method,
    route: routePath(c),
    ...(store ? { store } : {}),
    reason,
    ...(error ? { error } : {}),
  });
}

/**
 * The answer when no store took a write (nothing was acknowledged) or none could be read (`read`):
 * which way it failed, and when to try again.
 */
export function storeUnavailable(reason: "timeout" | "error", what: "write" | "read" = "write"): Response {
  const failed = reason === "timeout" ? "a store did not answer in time" : "a store failed";
  const res = jsonError(
    "store_unavailable",
    `${failed}; ${what === "write" ? "nothing was acknowledged" : "nothing could be read"}, retry later`,
  );
  res.headers.set("retry-after", String(STORE_RETRY_AFTER_SECONDS));
  return res;
}

/** How a route's OpenAPI entry describes its 503 (an admin route's also covers ADMIN_TOKEN unset). */
export function storeUnavailableDoc(kind: "write" | "read", admin = false): ResponseDoc {
  const what = kind === "write" ? "nothing was stored" : "nothing could be read";
  return {
    description: `\`store_unavailable\`: a store (KV, a Durable Object) failed or missed its deadline; ${what}, retry after Retry-After${admin ? ". Or `admin_disabled`: ADMIN_TOKEN is not configured" : ""}`,
    headers: { "Retry-After": "seconds to wait before retrying" },
  };
}

/**
 * A store call a write depends on (the write itself, or a read it needs), under its deadline: its
 * value, or the 503 the route answers with (`store_unavailable`, `Retry-After`) when the store timed
 * out or threw. Never a hang, never a bare 500.
 *
 * @example
 * const stored = await storeCall(c, () => visitorObject(c.env, id).setConsent(purposes, meta));
 * if (stored instanceof Response) return stored;
 */
export async function storeCall<T>(
  c: AppContext,
  call: () => Promise<T>,
  work: StoreWork = "write",
): Promise<T | Response> {
  const done = await withDeadline(call, storeDeadlineMs(c.env, work));
  if (done.ok) return done.value;
  logFailure(c, done.reason, done.error);
  return storeUnavailable(done.reason);
}

/**
 * A read the answer can do without, under its deadline (or a shared one): its value, or which store
 * failed and how (`kv-timeout`, `do-error`…), for the answer's `failOpen` list.
 */
export async function storeRead<T>(
  c: AppContext,
  store: "kv" | "do",
  call: () => Promise<T>,
  deadline: number | Deadline = storeDeadlineMs(c.env, "read"),
): Promise<{ ok: true; value: T } | { ok: false; failure: StoreFailure }> {
  const done = await withDeadline(call, deadline);
  if (done.ok) return { ok: true, value: done.value };
  logFailure(c, done.reason, done.error, store);
  return { ok: false, failure: `${store}-${done.reason}` };
}
