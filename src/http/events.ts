import type { Context, Hono } from "hono";
import type { VisitorEvent } from "../core/model.ts";
import { gpcSignal, privacyVerdict } from "../core/privacy.ts";
import { countConversions } from "../measure/experiment-do.ts";
import { readConfig } from "../platform/config.ts";
import type { Env } from "../platform/env.ts";
import { callerOf, resolveCanonical, subjectOf } from "../state/identity.ts";
import { readProfile, writeProfile } from "../state/profiles.ts";
import { visitorObject } from "../state/visitor-do.ts";
import { issueVisitorId, visitorCookieHeader } from "../state/visitor-id.ts";
import { type Issue, jsonError } from "./errors.ts";
import { limitWrite, RATE_LIMITED_DOC } from "./limits.ts";
import { documentRoute } from "./openapi.ts";
import { checkEvent, clockSkew, LIMITS, readBody } from "./request.ts";
import { ConsentRequestSchema, EventsRequestSchema, EventsResponseSchema } from "./schemas.ts";
import { storeCall, storeRead, storeUnavailableDoc } from "./store-calls.ts";

export type AppEnv = { Bindings: Env };
type C = Context<AppEnv>;

/** The limits live with the request module; re-exported for what imported them from here. */
export { LIMITS };

/**
 * Resolves who a request speaks for: a server (API key) names a visitor or user; a browser is its
 * signed cookie, and a new visitor gets one. Returns the canonical id, any cookie to set, and
 * whether the visitor is new (a browser without a valid cookie).
 */
export async function subjectFor(
  c: C,
  body: { visitorId?: string | undefined; userId?: string | undefined },
): Promise<{ id: string; setCookie: string | null; isNew: boolean } | Response> {
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

export function withCookie(response: Response, cookie: string | null): Response {
  if (cookie) response.headers.append("set-cookie", cookie);
  return response;
}

export function registerStateRoutes(api: Hono<AppEnv>): void {
  api.post("/v1/events", async (c) => {
    const receivedAt = Date.now();
    const isBeacon = (c.req.header("content-type") ?? "").toLowerCase().startsWith("text/plain");
    const envelope = await readBody(
      c.req.raw,
      isBeacon ? LIMITS.beaconBytes : LIMITS.batchBytes,
      EventsRequestSchema,
    );
    if (!envelope.ok) return envelope.response;
    const limited = await limitWrite(c);
    if (limited) return limited;
    const subject = await subjectFor(c, envelope.data);
    if (subject instanceof Response) return subject;

    const skew = clockSkew(envelope.data.sentAt, receivedAt);
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
    const gpc = gpcSignal(c.req.raw.headers, config.RESPECT_GPC);
    const notStored = { accepted: 0, duplicates: 0, stored: 0, rejected, reason: "consent" };
    // The gate as it stands for someone who has answered nothing: a new visitor's whole answer. A
    // known visitor's object asks it again with the consent it holds. Under GPC nothing is stored;
    // under opt-in a new visitor gets neither storage nor a cookie until they grant it.
    const upFront = privacyVerdict({ mode: config.CONSENT_MODE, gpc, consent: {}, erased: false });
    if (upFront.blocked === "gpc" || (subject.isNew && !upFront.keep))
      return withCookie(c.json(notStored, 202), upFront.remember ? subject.setCookie : null);
    const stub = visitorObject(c.env, subject.id);
    // 202 means stored: an object that fails or misses the write deadline answers 503 (Retry-After),
    // and the sender's retry is harmless (event ids are idempotent in the object).
    const result = await storeCall(c, () =>
      stub.ingest(subject.id, events, {
        now: receivedAt,
        rejected: deadLetters,
        consentMode: config.CONSENT_MODE,
      }),
    );
    if (result instanceof Response) return result;
    switch (result.status) {
      case "suppressed":
        return jsonError("suppressed", "this person's data was erased; events are refused");
      case "rate_limited": {
        const res = jsonError("rate_limited", "too many events for this visitor; retry later");
        res.headers.set("retry-after", String(result.retryAfterSeconds));
        return res;
      }
      case "no_consent":
        return withCookie(c.json(notStored, 202), subject.setCookie);
      case "stored": {
        if (result.conversions.length)
          c.executionCtx.waitUntil(countConversions(c.env, subject.id, result.conversions));
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
    const parsed = await readBody(c.req.raw, LIMITS.smallBytes, ConsentRequestSchema);
    if (!parsed.ok) return parsed.response;
    const limited = await limitWrite(c);
    if (limited) return limited;
    const subject = await subjectFor(c, parsed.data);
    if (subject instanceof Response) return subject;
    const purposes: Record<string, boolean> = {};
    for (const [purpose, granted] of Object.entries(parsed.data.purposes)) {
      if (typeof granted === "boolean") purposes[purpose] = granted;
    }
    const now = Date.now();
    // Both stores must take it (503 otherwise; setting the same consent again is harmless).
    const consent = await storeCall(c, () =>
      visitorObject(c.env, subject.id).setConsent(purposes, { visitorId: subject.id, now }),
    );
    if (consent instanceof Response) return consent;
    // KV carries consent to the decision path; written only when it changes (KV: 1 write/s per key).
    const profile = await storeCall(
      c,
      async () => (await readProfile(c.env, subject.id)) ?? { traits: {}, consent: {}, updatedAt: "" },
    );
    if (profile instanceof Response) return profile;
    const merged = { ...profile.consent, ...consent };
    if (Object.entries(merged).some(([k, v]) => profile.consent[k] !== v)) {
      const written = await storeCall(c, () =>
        writeProfile(c.env, subject.id, {
          ...profile,
          consent: merged,
          updatedAt: new Date(now).toISOString(),
        }),
      );
      if (written instanceof Response) return written;
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
      429: {
        ...RATE_LIMITED_DOC,
        description: `${RATE_LIMITED_DOC.description}; or this visitor's own event cap`,
      },
      503: storeUnavailableDoc("write"),
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
    responses: {
      200: { description: "the consent now held" },
      429: RATE_LIMITED_DOC,
      503: storeUnavailableDoc("write"),
    },
  });
}
