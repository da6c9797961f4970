import type { Hono } from "hono";
import * as z from "zod";
import type { VisitorEvent } from "../core/model.ts";
import { gpcSignal } from "../core/privacy.ts";
import { countConversions } from "../measure/experiment-object.ts";
import { bearerIs } from "../platform/bearer.ts";
import { readConfig } from "../platform/config.ts";
import { deadlineIn, withDeadline } from "../platform/deadline.ts";
import { log } from "../platform/log.ts";
import { tooOldReason } from "../state/visitor-backfill.ts";
import { type BackfillResult, visitorObject } from "../state/visitor-object.ts";
import { DAY_MS } from "../state/visitor-store.ts";
import type { AppContext, AppEnv } from "./app-env.ts";
import { jsonError } from "./errors.ts";
import { limitWrite, RATE_LIMITED_DOC } from "./limits.ts";
import { documentRoute } from "./openapi.ts";
import { IMPORT_LIMITS, importId } from "./profiles.ts";
import { checkEvent, checkJson, type EventAge, LIMITS, readLimited } from "./request.ts";
import { storeDeadlineMs, storeUnavailable, storeUnavailableDoc } from "./store-calls.ts";

/**
 * POST /v1/events/import: a server-side backfill of older history (a CRM's orders, an email
 * platform's sends and opens), NDJSON, one `{ id, event }` per line, in any time order. Each
 * person's lines go to their object in one call, which folds them in as if they had arrived live in
 * time order (src/core/backfill.ts) and answers each line: accepted, duplicate (the id was seen
 * before, live or in an earlier import: sending a file twice changes nothing), or refused with why.
 * A line's failure never fails the others.
 *
 * How far back: the history the event log keeps (EVENT_LOG_MAX_AGE_DAYS); an older line is refused
 * with that reason, never taken and silently pruned. For the site's servers (SERVER_API_KEY) and
 * admins (ADMIN_TOKEN); the privacy gate holds as on every route: under GPC, for a person who
 * withdrew consent (or has not granted it under opt-in) and for an erased person, nothing is recorded.
 */

/** One line: who (a visitor id, a canonical id or `user:<userId>`, as the traits import) and the event. */
export const EventImportLineSchema = z.strictObject({
  id: z.string().min(1).describe("a visitor id, a canonical id (u_…) or user:<userId>"),
  event: z
    .unknown()
    .describe(
      "{ id, type, ts, channel?, props? }: ts (epoch ms) or timestamp (epoch ms or ISO 8601) is required",
    ),
});

const Lines = z.array(z.number().int()).describe("line numbers, from 1");

export const EventImportResponseSchema = z.strictObject({
  accepted: z.number().int().describe("lines stored and folded into their person's state"),
  duplicates: z.number().int().describe("lines whose event id was seen before: nothing changed"),
  refused: z.number().int().describe("lines not stored: those in `visitors[].refused` and in `errors`"),
  visitors: z.array(
    z.strictObject({
      id: z.string().describe("the person as their first line named them"),
      visitorId: z.string().describe("their canonical id"),
      accepted: Lines,
      duplicates: Lines,
      refused: z.array(z.strictObject({ line: z.number().int(), reason: z.string() })),
    }),
  ),
  errors: z
    .array(z.strictObject({ line: z.number().int(), message: z.string() }))
    .describe("lines that name nobody: not JSON, not { id, event }, or an id that is not one"),
});
export type EventImportResponse = z.infer<typeof EventImportResponseSchema>;

type VisitorReport = EventImportResponse["visitors"][number];

/** One person's lines: those to send to their object, and the report being written. */
interface PersonLines {
  readonly report: VisitorReport;
  readonly events: VisitorEvent[];
  readonly lineOf: number[];
}

/** A backfill is for the site's servers and its admins; anyone else is told which credential to bring. */
async function backfillCaller(c: AppContext): Promise<Response | null> {
  const { config } = readConfig(c.env);
  const [server, admin] = await Promise.all([
    bearerIs(c.req.raw, config.SERVER_API_KEY),
    bearerIs(c.req.raw, config.ADMIN_TOKEN),
  ]);
  if (server || admin) return null;
  return jsonError(
    "unauthorized",
    "an event import needs Authorization: Bearer <SERVER_API_KEY> or Bearer <ADMIN_TOKEN>",
  );
}

/** The lines sorted by person (in the order each was first named) and those that name nobody. */
async function parseLines(
  text: string,
  receivedAt: number,
  age: EventAge,
): Promise<{ people: Map<string, PersonLines>; errors: EventImportResponse["errors"] }> {
  const people = new Map<string, PersonLines>();
  const errors: EventImportResponse["errors"] = [];
  // A person's lines name them the same way: hashed once (a user id's canonical id is a SHA-256).
  const canonical = new Map<string, string | null>();
  for (const [index, source] of text.split("\n").entries()) {
    const line = index + 1;
    if (!source.trim()) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(source);
    } catch {
      errors.push({ line, message: "not JSON" });
      continue;
    }
    // Checked as a request body is: one walk for depth, and forbidden keys at every depth.
    const problem = checkJson(raw);
    if (problem) {
      const message =
        problem.code === "forbidden_key"
          ? `key not allowed: ${problem.path}`
          : `nested deeper than ${LIMITS.depth} levels`;
      errors.push({ line, message });
      continue;
    }
    const row = EventImportLineSchema.safeParse(raw);
    if (!row.success) {
      errors.push({ line, message: "each line is an object { id, event }" });
      continue;
    }
    let visitorId = canonical.get(row.data.id);
    if (visitorId === undefined) {
      visitorId = await importId(row.data.id);
      canonical.set(row.data.id, visitorId);
    }
    if (!visitorId) {
      errors.push({ line, message: "id is not a visitor id or user:<userId>" });
      continue;
    }
    let person = people.get(visitorId);
    if (!person) {
      person = {
        report: { id: row.data.id, visitorId, accepted: [], duplicates: [], refused: [] },
        events: [],
        lineOf: [],
      };
      people.set(visitorId, person);
    }
    const event = row.data.event;
    // History says when it happened: a line without a time would be stamped now, in the wrong place.
    if (!event || typeof event !== "object" || !("ts" in event || "timestamp" in event)) {
      person.report.refused.push({ line, reason: "event.ts: required (when it happened: ts or timestamp)" });
      continue;
    }
    const checked = checkEvent(event, index, receivedAt, 0, age, "event");
    if ("issues" in checked) {
      const reason = checked.issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ");
      person.report.refused.push({ line, reason });
      continue;
    }
    person.events.push(checked.event);
    person.lineOf.push(line);
  }
  return { people, errors };
}

/** Every line still waiting for its person's object, refused with one reason. */
function refuseAll(person: PersonLines, reason: string): void {
  for (const line of person.lineOf) person.report.refused.push({ line, reason });
}

/** What the person's object made of their lines, written into their report. */
function report(person: PersonLines, result: BackfillResult): void {
  if (result.status === "suppressed") refuseAll(person, "suppressed: this person's data was erased");
  else if (result.status === "not_recorded")
    refuseAll(
      person,
      result.reason === "gpc"
        ? "not recorded: the request carries Sec-GPC: 1"
        : "not recorded: this person has not consented to personalization",
    );
  else
    for (const [index, outcome] of result.lines.entries()) {
      const line = person.lineOf[index]!;
      if (outcome.status === "accepted") person.report.accepted.push(line);
      else if (outcome.status === "duplicate") person.report.duplicates.push(line);
      else person.report.refused.push({ line, reason: outcome.reason });
    }
}

async function importEvents(c: AppContext): Promise<Response> {
  const refused = await backfillCaller(c);
  if (refused) return refused;
  const receivedAt = Date.now();
  const read = await readLimited(c.req.raw, IMPORT_LIMITS.bytes);
  if (!read.ok) return jsonError("payload_too_large", "imports are limited to 10 MB; split the file");
  const limited = await limitWrite(c, { kind: "server" });
  if (limited) return limited;
  const { config } = readConfig(c.env);
  const maxAgeMs = config.EVENT_LOG_MAX_AGE_DAYS * DAY_MS;
  const { people, errors } = await parseLines(read.text, receivedAt, {
    maxAgeMs,
    tooOld: tooOldReason(maxAgeMs),
  });
  if (people.size > IMPORT_LIMITS.ids) {
    return jsonError(
      "import_too_large",
      `at most ${IMPORT_LIMITS.ids} distinct people per import request; split the file`,
    );
  }
  const gpc = gpcSignal(c.req.raw.headers, config.RESPECT_GPC);
  const waiting = [...people.values()].filter((person) => person.events.length > 0);
  let storeFailures = 0;
  let lastFailure: "timeout" | "error" = "error";
  // The whole import has the bulk deadline, and each person's object until then (one person's years
  // of history is bulk work too): people not stored by then are reported as not stored, so the
  // request answers even when objects hang, and a retry of those lines is safe (ids are idempotent).
  const bulk = deadlineIn(storeDeadlineMs(c.env, "bulk"));
  const queue = gpc ? [] : [...waiting];
  // Under GPC nothing is recorded, and no object is made or asked.
  if (gpc) for (const person of waiting) report(person, { status: "not_recorded", reason: "gpc" });
  const worker = async () => {
    for (let person = queue.shift(); person !== undefined; person = queue.shift()) {
      const { visitorId } = person.report;
      const events = person.events;
      const done = bulk.expired
        ? ({ ok: false, reason: "timeout", error: "the import's bulk deadline passed" } as const)
        : await withDeadline(
            () =>
              visitorObject(c.env, visitorId).backfill(visitorId, events, {
                now: receivedAt,
                consentMode: config.CONSENT_MODE,
                gpc,
              }),
            bulk,
          );
      if (done.ok) {
        report(person, done.value);
        if (done.value.status === "stored" && done.value.conversions.length)
          c.executionCtx.waitUntil(countConversions(c.env, visitorId, done.value.conversions));
      } else {
        storeFailures++;
        lastFailure = done.reason;
        refuseAll(person, "not stored: a store failed or missed its deadline; retry these lines");
        log("warn", "backfill_write_failed", { reason: done.reason, error: done.error ?? null });
      }
    }
  };
  await Promise.all(Array.from({ length: IMPORT_LIMITS.concurrency }, worker));
  bulk.cancel();
  // Nothing was stored anywhere because every store failed: the caller retries the whole file.
  if (storeFailures > 0 && storeFailures === waiting.length) return storeUnavailable(lastFailure);
  const visitors = [...people.values()].map(({ report: r }) => ({
    ...r,
    refused: r.refused.sort((a, b) => a.line - b.line),
  }));
  const count = (pick: (r: VisitorReport) => number) => visitors.reduce((n, r) => n + pick(r), 0);
  const body: EventImportResponse = {
    accepted: count((r) => r.accepted.length),
    duplicates: count((r) => r.duplicates.length),
    refused: count((r) => r.refused.length) + errors.length,
    visitors,
    errors,
  };
  return c.json(body);
}

export function registerBackfillRoutes(api: Hono<AppEnv>): void {
  api.post("/v1/events/import", importEvents);

  documentRoute({
    method: "post",
    path: "/v1/events/import",
    operationId: "importEvents",
    tag: "events",
    serverOrAdmin: true,
    summary:
      "Backfill older history: NDJSON, one { id, event } per line, in any time order, as far back as the event log keeps; per-line report per person",
    body: z
      .string()
      .describe(
        'one JSON object per line: {"id": "user:42", "event": {"id": "crm-9", "type": "email_open", "timestamp": "2026-06-01T09:00:00Z", "channel": "email"}}',
      ),
    bodyContentTypes: ["application/x-ndjson"],
    responses: {
      200: {
        description:
          "each line accepted, duplicate or refused with why, grouped per person; lines that name nobody in `errors`",
        schema: EventImportResponseSchema,
      },
      401: { description: "no or wrong `Authorization: Bearer <SERVER_API_KEY or ADMIN_TOKEN>`" },
      413: { description: "over 10 MB, or more than 250 distinct people in one request" },
      429: RATE_LIMITED_DOC,
      503: {
        ...storeUnavailableDoc("write"),
        description: `${storeUnavailableDoc("write").description} (every person failed; otherwise 200 names each line not stored)`,
      },
    },
  });
}
