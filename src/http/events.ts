import type { Context, Hono } from "hono";
import type { VisitorEvent } from "../core/model.ts";
import { readConfig } from "../edge/config.ts";
import type { Env } from "../edge/env.ts";
import { experimentObject } from "../measure/experiment-do.ts";
import { callerOf, resolveCanonical, subjectOf } from "../state/identity.ts";
import { log } from "../state/log.ts";
import { findForbiddenKey, readProfile, writeProfile } from "../state/profiles.ts";
import { visitorObject } from "../state/visitor-do.ts";
import { issueVisitorId, VISITOR_ID_PATTERN, visitorCookieHeader } from "../state/visitor-id.ts";
import { depthExceeds, readLimited } from "./body.ts";
import { invalidRequest, issuesOf, jsonError } from "./errors.ts";
import { documentRoute } from "./openapi.ts";
import { ConsentRequestSchema, EventSchema, EventsRequestSchema, EventsResponseSchema } from "./schemas.ts";

export type AppEnv = { Bindings: Env };
type C = Context<AppEnv>;

/** Limits from the event pipelines users know (Segment, RudderStack). */
export const LIMITS = {
  /** One event, as UTF-8 JSON: over it, that event is rejected (the rest of the batch stands). */
  eventBytes: 32 * 1024,
  /** A JSON batch (413 over it), counted on the bytes read, never on Content-Length. */
  batchBytes: 500 * 1024,
  /** A `text/plain` body from navigator.sendBeacon (413 over it). */
  beaconBytes: 64 * 1024,
  /** Nesting of arrays and objects in a body (400 deeper). */
  depth: 10,
  /** Accepted event times, after clock-skew correction, around the time received. */
  futureMs: 5 * 60e3,
  pastMs: 7 * 86400e3,
} as const;

const encoder = new TextEncoder();

/**
 * A JSON body read under a byte limit counted on the stream (Hono's bodyLimit trusted
 * Content-Length: CVE-2025-59139), no deeper than LIMITS.depth, with no prototype-polluting keys.
 */
export async function readJson(
  c: C,
  limit: number,
): Promise<{ ok: true; value: unknown } | { ok: false; response: Response }> {
  const read = await readLimited(c.req.raw, limit);
  if (!read.ok)
    return { ok: false, response: jsonError(413, "payload_too_large", `the body is over ${limit} bytes`) };
  let value: unknown;
  try {
    value = JSON.parse(read.text);
  } catch {
    return { ok: false, response: jsonError(400, "invalid_json", "the body is not JSON") };
  }
  if (depthExceeds(value, LIMITS.depth)) {
    return {
      ok: false,
      response: jsonError(400, "too_deep", `JSON nested deeper than ${LIMITS.depth} levels`),
    };
  }
  const forbidden = findForbiddenKey(value);
  if (forbidden) {
    return {
      ok: false,
      response: jsonError(400, "forbidden_key", "keys __proto__, constructor and prototype are not allowed", {
        issues: [{ path: forbidden, message: "key not allowed" }],
      }),
    };
  }
  return { ok: true, value };
}

/**
 * Resolves who a request speaks for: a server (API key) names a visitor or user; a browser is its
 * signed cookie, and a new visitor gets one. Returns the canonical id and any cookie to set.
 */
export async function subjectFor(
  c: C,
  body: { visitorId?: string | undefined; userId?: string | undefined },
): Promise<{ id: string; setCookie: string | null } | Response> {
  const caller = await callerOf(c.req.raw, c.env);
  const { config } = readConfig(c.env);
  if (caller.kind === "server") {
    if (body.visitorId !== undefined && !VISITOR_ID_PATTERN.test(body.visitorId)) {
      return jsonError(400, "invalid_request", "not a Northstar visitor id", {
        issues: [{ path: "visitorId", message: "not a Northstar visitor id" }],
      });
    }
    const id = await subjectOf(body, c.env);
    return id
      ? { id, setCookie: null }
      : jsonError(400, "invalid_request", "visitorId or userId is required", {
          issues: [{ path: "visitorId", message: "server calls name a visitorId or a userId" }],
        });
  }
  if (body.visitorId || body.userId) {
    return jsonError(403, "forbidden", "browsers may only send events for their own visitor (the cookie)");
  }
  if (caller.visitorId) return { id: await resolveCanonical(c.env, caller.visitorId), setCookie: null };
  // No cookie, or a tampered one: a new visitor.
  if (!config.COOKIE_SECRET) return jsonError(503, "cookies_disabled", "COOKIE_SECRET is not configured");
  const id = issueVisitorId();
  return { id, setCookie: await visitorCookieHeader(id, config) };
}

export function withCookie(response: Response, cookie: string | null): Response {
  if (cookie) response.headers.append("set-cookie", cookie);
  return response;
}

type Issue = { path: string; message: string };

/**
 * One event checked, and built from allow-listed keys: the stored event, or the issues that
 * reject it (by JSON path). `skew` is (received − sentAt), added to the sender's times.
 */
export function checkEvent(
  raw: unknown,
  index: number,
  receivedAt: number,
  skew: number,
): { event: VisitorEvent; rawText: string } | { issues: Issue[]; rawText: string } {
  const rawText = JSON.stringify(raw) ?? "";
  if (encoder.encode(rawText).byteLength > LIMITS.eventBytes)
    return { rawText, issues: [{ path: `events.${index}`, message: "event over 32 KB" }] };
  const parsed = EventSchema.safeParse(raw);
  if (!parsed.success) {
    return {
      rawText,
      issues: issuesOf(parsed.error).map((i) => ({ path: `events.${index}.${i.path}`, message: i.message })),
    };
  }
  const ts = parsed.data.ts === undefined ? receivedAt : parsed.data.ts + skew;
  if (ts > receivedAt + LIMITS.futureMs)
    return {
      rawText,
      issues: [{ path: `events.${index}.ts`, message: "more than 5 minutes in the future" }],
    };
  if (ts < receivedAt - LIMITS.pastMs)
    return { rawText, issues: [{ path: `events.${index}.ts`, message: "older than 7 days" }] };
  // Built from the schema's allow-listed keys; props is the record zod validated (a fresh object
  // whose keys were checked for __proto__ and friends with the body). It stays an ordinary object:
  // null-prototype objects cannot cross Workers RPC (structured clone refuses them).
  const { id, type, channel, props } = parsed.data;
  return { rawText, event: { id, type, ts, channel, props } };
}

export function registerStateRoutes(api: Hono<AppEnv>): void {
  api.post("/v1/events", async (c) => {
    const receivedAt = Date.now();
    const isBeacon = (c.req.header("content-type") ?? "").toLowerCase().startsWith("text/plain");
    const read = await readJson(c, isBeacon ? LIMITS.beaconBytes : LIMITS.batchBytes);
    if (!read.ok) return read.response;
    const envelope = EventsRequestSchema.safeParse(read.value);
    if (!envelope.success) return invalidRequest(envelope.error);
    const subject = await subjectFor(c, envelope.data);
    if (subject instanceof Response) return subject;

    // Device clocks drift: shift sender times by (received − sent), as Snowplow and Segment do.
    const skew = envelope.data.sentAt ? receivedAt - envelope.data.sentAt : 0;
    const events: VisitorEvent[] = [];
    const rejected: Array<{ index: number; issues: Issue[] }> = [];
    const deadLetters: Array<{ index: number; reason: string; raw: string }> = [];
    const indexOf = new Map<string, number>();
    for (const [index, raw] of envelope.data.events.entries()) {
      const checked = checkEvent(raw, index, receivedAt, skew);
      if ("issues" in checked) {
        rejected.push({ index, issues: checked.issues });
        deadLetters.push({
          index,
          reason: checked.issues.map((i) => `${i.path}: ${i.message}`).join("; "),
          raw: checked.rawText,
        });
      } else {
        events.push(checked.event);
        indexOf.set(checked.event.id, index);
      }
    }

    const { config } = readConfig(c.env);
    const gpc = config.RESPECT_GPC && c.req.header("sec-gpc") === "1";
    const notStored = { accepted: 0, duplicates: 0, stored: 0, rejected, reason: "consent" };
    // Global Privacy Control is an opt-out: nothing reaches storage, as with consent withheld.
    if (gpc) return withCookie(c.json(notStored, 202), subject.setCookie);
    const stub = visitorObject(c.env, subject.id);
    const result = await stub.ingest(subject.id, events, {
      now: receivedAt,
      rejected: deadLetters,
      consentMode: config.CONSENT_MODE,
    });
    switch (result.status) {
      case "suppressed":
        return jsonError(410, "suppressed", "this person's data was erased; events are refused");
      case "rate_limited": {
        const res = jsonError(429, "rate_limited", "too many events for this visitor; retry later");
        res.headers.set("retry-after", String(result.retryAfterSeconds));
        return res;
      }
      case "no_consent":
        return withCookie(c.json(notStored, 202), subject.setCookie);
      case "stored": {
        if (result.conversions.length) {
          c.executionCtx.waitUntil(
            Promise.all(
              result.conversions.map((conv) =>
                experimentObject(c.env, conv.experiment).convert(subject.id, conv.at),
              ),
            ).catch((err: unknown) => log("warn", "conversion_not_recorded", { error: String(err) })),
          );
        }
        // An event the visitor's object could not apply is reported like a rejected one, by index.
        for (const f of result.failed) {
          const index = indexOf.get(f.id);
          if (index !== undefined)
            rejected.push({ index, issues: [{ path: `events.${index}`, message: f.reason }] });
        }
        rejected.sort((a, b) => a.index - b.index);
        const body = {
          accepted: result.accepted,
          duplicates: result.duplicates,
          stored: result.accepted,
          rejected,
        };
        return withCookie(c.json(body, 202), subject.setCookie);
      }
    }
  });

  api.post("/v1/consent", async (c) => {
    const read = await readJson(c, 8 * 1024);
    if (!read.ok) return read.response;
    const parsed = ConsentRequestSchema.safeParse(read.value);
    if (!parsed.success) return invalidRequest(parsed.error);
    const subject = await subjectFor(c, parsed.data);
    if (subject instanceof Response) return subject;
    const purposes: Record<string, boolean> = {};
    for (const [purpose, granted] of Object.entries(parsed.data.purposes)) {
      if (typeof granted === "boolean") purposes[purpose] = granted;
    }
    const now = Date.now();
    const consent = await visitorObject(c.env, subject.id).setConsent(purposes, {
      visitorId: subject.id,
      now,
    });
    // KV carries consent to the decision path; written only when it changes (KV: 1 write/s per key).
    const profile = (await readProfile(c.env, subject.id)) ?? { traits: {}, consent: {}, updatedAt: "" };
    const merged = { ...profile.consent, ...consent };
    if (Object.entries(merged).some(([k, v]) => profile.consent[k] !== v)) {
      await writeProfile(c.env, subject.id, {
        ...profile,
        consent: merged,
        updatedAt: new Date(now).toISOString(),
      });
    }
    return withCookie(c.json({ consent }), subject.setCookie);
  });

  documentRoute({
    method: "post",
    path: "/v1/events",
    operationId: "recordEvents",
    tag: "events",
    server: true,
    summary: "Record a batch of behavioural events (JSON, or text/plain from navigator.sendBeacon)",
    body: EventsRequestSchema,
    bodyContentTypes: ["application/json", "text/plain"],
    responses: {
      202: {
        description: "stored durably; per-event rejections by index; stored 0 with reason consent",
        schema: EventsResponseSchema,
      },
      400: { description: "not JSON, too deep, over 100 events, a forbidden key, or a malformed id" },
      403: { description: "a browser naming a visitorId or userId" },
      410: { description: "the person was erased" },
      413: { description: "body over 500 KB (64 KB for beacons)" },
      429: { description: "per-visitor rate cap; see Retry-After" },
    },
  });
  documentRoute({
    method: "post",
    path: "/v1/consent",
    operationId: "setConsent",
    tag: "privacy",
    server: true,
    summary: "Set consent per purpose (browser: its cookie's visitor; server: visitorId or userId)",
    body: ConsentRequestSchema,
    responses: { 200: { description: "the consent now held" } },
  });
}
