import type { Hono } from "hono";
import type { VisitorEvent } from "../core/model.ts";
import { gpcSignal, privacyVerdict } from "../core/privacy.ts";
import { checkFirstPage, parseFirstPage } from "../edge/first-page.ts";
import { countInExperiments } from "../edge/personalize.ts";
import { countConversions } from "../measure/experiment-object.ts";
import { readConfig } from "../platform/config.ts";
import { emptyProfile, readProfile, writeProfile } from "../state/profiles.ts";
import { activeRules } from "../state/rules-loader.ts";
import { type FirstPageRecord, type IngestResult, visitorObject } from "../state/visitor-object.ts";
import type { AppContext, AppEnv } from "./app-env.ts";
import { type Issue, jsonError } from "./errors.ts";
import { limitWrite, RATE_LIMITED_DOC } from "./limits.ts";
import { documentRoute } from "./openapi.ts";
import { checkEvent, clockSkew, LIMITS, readBody } from "./request.ts";
import { ConsentRequestSchema, EventsRequestSchema, EventsResponseSchema } from "./schemas.ts";
import { storeCall, storeUnavailableDoc } from "./store-calls.ts";
import { type Subject, subjectFor, withCookie } from "./subject.ts";

/** The limits live with the request module; re-exported for what imported them from here. */
export { LIMITS };

type Rejection = { index: number; issues: Issue[] };

/** A batch's events sorted into those to store and those refused (by index, and as dead letters). */
interface CheckedBatch {
  readonly events: VisitorEvent[];
  readonly rejected: Rejection[];
  readonly deadLetters: Array<{ index: number; reason: string; raw: string }>;
  /** Each stored event's index in the batch, to report the object's own refusals by index. */
  readonly indexOf: Map<string, number>;
}

function checkBatch(raws: readonly unknown[], receivedAt: number, skew: number): CheckedBatch {
  const batch: CheckedBatch = { events: [], rejected: [], deadLetters: [], indexOf: new Map() };
  for (const [index, raw] of raws.entries()) {
    const checked = checkEvent(raw, index, receivedAt, skew);
    if ("issues" in checked) {
      batch.rejected.push({ index, issues: checked.issues });
      batch.deadLetters.push({
        index,
        reason: checked.issues.map((issue) => `${issue.path}: ${issue.message}`).join("; "),
        raw: checked.rawText,
      });
    } else {
      batch.events.push(checked.event);
      batch.indexOf.set(checked.event.id, index);
    }
  }
  return batch;
}

/**
 * POST /v1/events: a batch (JSON, or text/plain from navigator.sendBeacon) read, limited, checked
 * event by event, passed through the privacy gate, then stored by the visitor's object.
 */
async function recordEvents(c: AppContext): Promise<Response> {
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

  const batch = checkBatch(envelope.data.events, receivedAt, clockSkew(envelope.data.sentAt, receivedAt));
  const { config } = readConfig(c.env);
  const gpc = gpcSignal(c.req.raw.headers, config.RESPECT_GPC);
  const notStored = (reason: "gpc" | "consent") => ({
    accepted: 0,
    duplicates: 0,
    stored: 0,
    rejected: batch.rejected,
    reason,
  });
  // The gate as it stands for someone who has answered nothing: a new visitor's whole answer. A
  // known visitor's object asks it again with the consent it holds. Under GPC nothing is stored;
  // under opt-in a new visitor gets neither storage nor a cookie until they grant it.
  const upFront = privacyVerdict({ mode: config.CONSENT_MODE, gpc, consent: {}, erased: false });
  if (upFront.blocked === "gpc" || (subject.isNew && !upFront.keep))
    return withCookie(
      c.json(notStored(upFront.blocked === "gpc" ? "gpc" : "consent"), 202),
      upFront.remember ? subject.setCookie : null,
    );
  const firstPage = envelope.data.firstPage
    ? await checkedFirstPage(c, subject.id, envelope.data.firstPage, config.STORE_DEADLINE_MS)
    : undefined;
  const stub = visitorObject(c.env, subject.id);
  // 202 means stored: an object that fails or misses the write deadline answers 503 (Retry-After),
  // and the sender's retry is harmless (event ids are idempotent in the object).
  const result = await storeCall(c, () =>
    stub.ingest(subject.id, batch.events, {
      now: receivedAt,
      rejected: batch.deadLetters,
      consentMode: config.CONSENT_MODE,
      firstPage,
    }),
  );
  if (result instanceof Response) return result;
  if (result.status === "no_consent") return withCookie(c.json(notStored("consent"), 202), subject.setCookie);
  if (result.status === "stored" && result.firstPageCounted && firstPage)
    c.executionCtx.waitUntil(
      countInExperiments(c.env, subject.id, firstPage.exposures, firstPage.assignments, receivedAt),
    );
  return answerIngest(c, subject, batch, result);
}

/**
 * A new visitor's first page, as their beacon's first call claims it, checked against the active
 * rules (src/edge/first-page.ts). Rules that cannot be read leave the claim unrecorded: the events
 * are stored all the same.
 */
async function checkedFirstPage(
  c: AppContext,
  visitorId: string,
  field: string,
  deadlineMs: number,
): Promise<FirstPageRecord | undefined> {
  const claim = parseFirstPage(field);
  if (!claim) return undefined;
  const rules = await activeRules(c.env, c.executionCtx, deadlineMs);
  return rules ? (checkFirstPage(rules.compiled, visitorId, claim) ?? undefined) : undefined;
}

/** What the visitor's object made of the batch, as the sender hears it. */
function answerIngest(
  c: AppContext,
  subject: Subject,
  batch: CheckedBatch,
  result: Exclude<IngestResult, { status: "no_consent" }>,
): Response {
  switch (result.status) {
    case "suppressed":
      return jsonError("suppressed", "this person's data was erased; events are refused");
    case "rate_limited": {
      const res = jsonError("rate_limited", "too many events for this visitor; retry later");
      res.headers.set("retry-after", String(result.retryAfterSeconds));
      return res;
    }
    case "stored": {
      if (result.conversions.length)
        c.executionCtx.waitUntil(countConversions(c.env, subject.id, result.conversions));
      // An event the visitor's object could not apply is reported like a rejected one, by index.
      const rejected = [...batch.rejected];
      for (const failure of result.failed) {
        const index = batch.indexOf.get(failure.id);
        if (index !== undefined)
          rejected.push({ index, issues: [{ path: `events.${index}`, message: failure.reason }] });
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
}

/**
 * POST /v1/consent: the purposes a visitor granted or withdrew, held by their object (the gate's
 * truth) and copied to KV, where the decision path reads it.
 */
async function setConsent(c: AppContext): Promise<Response> {
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
  const profile = await storeCall(c, async () => (await readProfile(c.env, subject.id)) ?? emptyProfile());
  if (profile instanceof Response) return profile;
  const merged = { ...profile.consent, ...consent };
  if (Object.entries(merged).some(([purpose, granted]) => profile.consent[purpose] !== granted)) {
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
}

export function registerStateRoutes(api: Hono<AppEnv>): void {
  api.post("/v1/events", recordEvents);
  api.post("/v1/consent", setConsent);

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
