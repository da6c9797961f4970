import type * as z from "zod";
import type { VisitorEvent } from "../core/model.ts";
import { inspectJson } from "../core/traits.ts";
import { type Issue, invalidRequest, issuesOf, jsonError } from "./errors.ts";
import { EventSchema } from "./schemas.ts";

/**
 * The one way a route reads what a caller sent: the body under a byte limit, as JSON no deeper
 * than LIMITS.depth and with no prototype-polluting key at any depth, and events checked and built
 * the same way for every route that takes them. Expected failures are values; `refuseBody` is the
 * one place they become responses.
 */

/** Limits from the event pipelines users know (Segment, RudderStack). */
export const LIMITS = {
  /** One event, as UTF-8 JSON: over it, that event is rejected. */
  eventBytes: 32 * 1024,
  /** A JSON batch of events, or a decide call (413 over it). */
  batchBytes: 500 * 1024,
  /** A `text/plain` body from navigator.sendBeacon (413 over it). */
  beaconBytes: 64 * 1024,
  /** A person's traits, set by the admin API (413 over it). */
  traitsBytes: 64 * 1024,
  /** Identify, consent and preview: a few fields each (413 over it). */
  smallBytes: 8 * 1024,
  /** Nesting of arrays and objects in a body (400 deeper). */
  depth: 10,
  /** Accepted event times, after clock-skew correction, around the time received. */
  futureMs: 5 * 60e3,
  pastMs: 7 * 86400e3,
} as const;

/**
 * Reads a request body with a byte limit counted on the bytes actually received: the
 * Content-Length header is a claim, not a measurement (Hono's bodyLimit trusted it: CVE-2025-59139).
 * Over the limit, the rest of the body is cancelled, never read.
 */
export type BodyRead = { ok: true; text: string } | { ok: false; limit: number };

export async function readLimited(request: Request, limit: number): Promise<BodyRead> {
  if (!request.body) return { ok: true, text: "" };
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      // The caller hears 413 either way; a stream that cannot be cancelled changes nothing for it.
      await reader.cancel().catch(() => undefined);
      return { ok: false, limit };
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  return { ok: true, text: new TextDecoder().decode(all) };
}

/** Why a body was refused before its fields were looked at. */
export type BodyProblem =
  | { readonly code: "payload_too_large"; readonly limit: number }
  | { readonly code: "invalid_json" }
  | { readonly code: "too_deep" | "forbidden_key"; readonly path: string };

export type JsonRead = { ok: true; value: unknown } | { ok: false; problem: BodyProblem };

/** A JSON value's shape checked in one walk: depth and forbidden keys, at every depth. */
export function checkJson(value: unknown): BodyProblem | null {
  const problem = inspectJson(value, LIMITS.depth);
  return problem ? { code: problem.reason, path: problem.path } : null;
}

/** The body as JSON, read under `limit` bytes and checked by checkJson. */
export async function readJson(request: Request, limit: number): Promise<JsonRead> {
  const read = await readLimited(request, limit);
  if (!read.ok) return { ok: false, problem: { code: "payload_too_large", limit } };
  let value: unknown;
  try {
    value = JSON.parse(read.text);
  } catch {
    return { ok: false, problem: { code: "invalid_json" } };
  }
  const problem = checkJson(value);
  return problem ? { ok: false, problem } : { ok: true, value };
}

/** What a BodyProblem means to a caller, in words (also the import's per-line message). */
function describeProblem(problem: BodyProblem): string {
  switch (problem.code) {
    case "payload_too_large":
      return `the body is over ${problem.limit} bytes`;
    case "invalid_json":
      return "not JSON";
    case "too_deep":
      return `nested deeper than ${LIMITS.depth} levels`;
    case "forbidden_key":
      return "keys __proto__, constructor and prototype are not allowed";
  }
}

export function refuseBody(problem: BodyProblem): Response {
  const message = describeProblem(problem);
  switch (problem.code) {
    case "payload_too_large":
      return jsonError(problem.code, message);
    case "invalid_json":
      return jsonError(problem.code, "the body is not JSON", { issues: [{ path: "(body)", message }] });
    case "too_deep":
    case "forbidden_key":
      return jsonError(problem.code, message, { issues: [{ path: problem.path, message }] });
  }
}

/**
 * A JSON body read and checked, then parsed by `schema`: the value, or the response that refuses it
 * (413, or 400 naming each bad field).
 */
export async function readBody<S extends z.ZodType>(
  request: Request,
  limit: number,
  schema: S,
): Promise<{ ok: true; data: z.output<S> } | { ok: false; response: Response }> {
  const read = await readJson(request, limit);
  if (!read.ok) return { ok: false, response: refuseBody(read.problem) };
  const parsed = schema.safeParse(read.value);
  return parsed.success
    ? { ok: true, data: parsed.data }
    : { ok: false, response: invalidRequest(parsed.error) };
}

/** Device clocks drift: sender times are shifted by (received − sentAt), as Snowplow and Segment do. */
export function clockSkew(sentAt: number | undefined, receivedAt: number): number {
  return sentAt === undefined ? 0 : receivedAt - sentAt;
}

const encoder = new TextEncoder();

export type CheckedEvent = { event: VisitorEvent; rawText: string } | { issues: Issue[]; rawText: string };

/**
 * How far back an event may be timed, and why an older one is refused: live events within
 * LIMITS.pastMs; a backfill (src/http/backfill.ts) as far back as the event log keeps.
 */
export interface EventAge {
  readonly maxAgeMs: number;
  readonly tooOld: string;
}
const LIVE_AGE: EventAge = { maxAgeMs: LIMITS.pastMs, tooOld: "older than 7 days" };

/**
 * One event checked, and built from allow-listed keys: the stored event, or the issues that reject
 * it (by JSON path, `events.<index>…`, or `at` when given). `skew` comes from clockSkew. Every route
 * that takes events checks them here, so they accept and refuse the same ones; only how old an
 * event may be differs (`age`).
 */
export function checkEvent(
  raw: unknown,
  index: number,
  receivedAt: number,
  skew: number,
  age: EventAge = LIVE_AGE,
  at = `events.${index}`,
): CheckedEvent {
  const rawText = JSON.stringify(raw) ?? "";
  // UTF-8 bytes, as stored and sent on: "é" is one UTF-16 unit but two bytes.
  if (encoder.encode(rawText).byteLength > LIMITS.eventBytes)
    return { rawText, issues: [{ path: at, message: "event over 32 KB" }] };
  const parsed = EventSchema.safeParse(raw);
  if (!parsed.success) return { rawText, issues: issuesOf(parsed.error, at) };
  const ts = parsed.data.ts === undefined ? receivedAt : parsed.data.ts + skew;
  if (ts > receivedAt + LIMITS.futureMs)
    return { rawText, issues: [{ path: `${at}.ts`, message: "more than 5 minutes in the future" }] };
  if (ts < receivedAt - age.maxAgeMs) return { rawText, issues: [{ path: `${at}.ts`, message: age.tooOld }] };
  // Built from the schema's allow-listed keys; props is the record zod validated (a fresh object
  // whose keys were checked for __proto__ and friends with the body). It stays an ordinary object:
  // null-prototype objects cannot cross Workers RPC (structured clone refuses them).
  const { id, type, channel, props } = parsed.data;
  return { rawText, event: { id, type, ts, channel, props } };
}
