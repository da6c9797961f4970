import type { Hono } from "hono";
import * as z from "zod";
import { forgetPerson, personRows } from "../measure/experiment-object.ts";
import { readConfig } from "../platform/config.ts";
import { deadlineIn, withDeadline } from "../platform/deadline.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { sendExport } from "../state/export-producer.ts";
import { erasureRecord } from "../state/export-record.ts";
import { canonicalFromParam, forgetAlias } from "../state/identity.ts";
import {
  aliasesKey,
  aliasKey,
  emptyProfile,
  forgetTraits,
  isSuppressed,
  profileKey,
  readAliases,
  readProfile,
  suppressedKey,
  writeProfile,
} from "../state/profiles.ts";
import { activeRules } from "../state/rules-loader.ts";
import { traitsWritten } from "../state/traits-written.ts";
import { canonicalForUser } from "../state/visitor-id.ts";
import { type JourneyRecord, type VisitorDump, visitorObject } from "../state/visitor-object.ts";
import type { AppContext, AppEnv } from "./app-env.ts";
import { jsonError } from "./errors.ts";
import { documentRoute } from "./openapi.ts";
import { checkJson, LIMITS, readBody, readLimited } from "./request.ts";
import { UserIdSchema, VisitorIdSchema } from "./schemas.ts";
import {
  type StoreFailure,
  storeCall,
  storeDeadlineMs,
  storeRead,
  storeUnavailable,
  storeUnavailableDoc,
} from "./store-calls.ts";

/** Traits: a JSON object of at most 64 KB; the values are the CRM's, the keys must be safe. */
export const TraitsSchema = z.record(z.string().min(1).max(128), z.unknown());
export type TraitsInput = z.infer<typeof TraitsSchema>;

export const IMPORT_LIMITS = {
  bytes: 10 * 1024 * 1024,
  /**
   * Distinct ids per import request: each costs up to three KV operations, and one Worker
   * invocation may make 1,000. Larger files are sent in several requests.
   */
  ids: 250,
  /** Writes in flight at once. */
  concurrency: 6,
} as const;

/** A prototype-free copy (the keys were checked for __proto__ and friends already). */
const plain = (o: Readonly<Record<string, unknown>>): Record<string, unknown> => ({
  ...Object.assign(Object.create(null) as Record<string, unknown>, o),
});

export async function idParam(c: AppContext): Promise<string | Response> {
  // An anonymous id's alias is read from KV: a profile route needs it (503 when KV fails it).
  const id = await storeCall(c, () => canonicalFromParam(c.env, c.req.param("id") ?? ""));
  if (id instanceof Response) return id;
  return (
    id ??
    jsonError("invalid_request", "not a Northstar visitor id", {
      issues: [{ path: "id", message: "a visitor id, a canonical id (u_…) or user:<userId>" }],
    })
  );
}

/** The canonical id of an import line's `id` (same forms as the routes' `:id`, without alias lookup). */
export async function importId(raw: string): Promise<string | null> {
  if (raw.startsWith("user:")) {
    const userId = raw.slice(5);
    return UserIdSchema.safeParse(userId).success ? canonicalForUser(userId) : null;
  }
  return VisitorIdSchema.safeParse(raw).success ? raw : null;
}

/**
 * The object's export. Workers RPC types `unknown` props as not serializable (they are: they came
 * from JSON), which erases the return type; the object's own signature is the truth.
 */
function exportOf(env: Env, id: string): Promise<VisitorDump | null> {
  return visitorObject(env, id).exportAll();
}

/** The person's journeys as their object holds them (typed by the object's signature, as above). */
function journeysOf(env: Env, id: string): Promise<JourneyRecord[]> {
  return visitorObject(env, id).journeyRecords();
}

/**
 * The experiments that may hold rows of a person: those they were assigned to, and every
 * experiment of the active rules (an alias not yet propagated records under the anonymous id).
 */
async function experimentsOf(c: AppContext, dump: VisitorDump | null): Promise<string[]> {
  const rules = await activeRules(c.env, c.executionCtx);
  return [
    ...new Set([
      ...Object.keys(rules?.compiled.experiments ?? {}),
      ...Object.keys(dump?.state.assignments ?? {}),
    ]),
  ];
}

/** Erases one id everywhere it could be held, and suppresses it. */
async function eraseOne(env: Env, id: string, at: string): Promise<void> {
  await Promise.all([
    visitorObject(env, id).erase(),
    env.PROFILES.delete(profileKey(id)).then(() => forgetTraits(id)),
    env.PROFILES.delete(aliasKey(id)).then(() => forgetAlias(id)),
    suppressedKey(id).then((key) => env.PROFILES.put(key, JSON.stringify({ at }))),
  ]);
}

/** How the OpenAPI document describes a profile route's `{id}`, and the 400 a bad one gets. */
const PERSON_ID = "a visitor id, a canonical id (u_…) or user:<userId>";
const BAD_PERSON_ID = { description: `not ${PERSON_ID}` };

/** PUT /v1/profiles/:id/traits: traits from a CRM or warehouse, merged (or replaced with ?mode=replace). */
async function setTraits(c: AppContext): Promise<Response> {
  const id = await idParam(c);
  if (id instanceof Response) return id;
  const parsed = await readBody(c.req.raw, LIMITS.traitsBytes, TraitsSchema);
  if (!parsed.ok) return parsed.response;
  // Each store call has the write deadline: one that fails answers 503 and nothing is acknowledged.
  const erased = await storeCall(c, () => isSuppressed(c.env, id));
  if (erased instanceof Response) return erased;
  if (erased) return jsonError("suppressed", "this person's data was erased");
  const replace = c.req.query("mode") === "replace";
  const current = await storeCall(c, async () => (await readProfile(c.env, id)) ?? emptyProfile());
  if (current instanceof Response) return current;
  const traits = replace ? plain(parsed.data) : plain({ ...current.traits, ...parsed.data });
  const written = await storeCall(c, () =>
    writeProfile(c.env, id, { ...current, traits, updatedAt: new Date().toISOString() }),
  );
  if (written instanceof Response) return written;
  // The journeys whose triggers read these traits are checked now (a retry is safe: same entries).
  const checked = await storeCall(c, () =>
    traitsWritten(c.env, id, current.traits, traits, Date.now(), c.executionCtx),
  );
  if (checked instanceof Response) return checked;
  return c.json({ id, traits });
}

type ImportError = { line: number; message: string };

/**
 * An import's lines, checked: the traits per id (the lines of one id become one write: KV allows
 * about one write per second per key), and each line refused, with why.
 */
async function parseImport(
  text: string,
): Promise<{ byId: Map<string, { traits: Record<string, unknown>; line: number }>; errors: ImportError[] }> {
  const errors: ImportError[] = [];
  const byId = new Map<string, { traits: Record<string, unknown>; line: number }>();
  for (const [index, source] of text.split("\n").entries()) {
    const line = index + 1;
    if (!source.trim()) continue;
    let row: { id?: unknown; traits?: unknown };
    try {
      row = JSON.parse(source);
    } catch {
      errors.push({ line, message: "not JSON" });
      continue;
    }
    if (!row || typeof row !== "object" || Array.isArray(row)) {
      errors.push({ line, message: "each line is an object { id, traits }" });
      continue;
    }
    const id = typeof row.id === "string" ? await importId(row.id) : null;
    if (typeof row.id !== "string" || !row.id) errors.push({ line, message: "id must be a string" });
    else if (!id) errors.push({ line, message: "id is not a visitor id or user:<userId>" });
    else if (!row.traits || typeof row.traits !== "object" || Array.isArray(row.traits))
      errors.push({ line, message: "traits must be an object" });
    else {
      // Checked as a request body is: one walk for depth, and forbidden keys at every depth.
      const problem = checkJson(row.traits);
      if (problem?.code === "forbidden_key")
        errors.push({ line, message: `key not allowed: ${problem.path}` });
      else if (problem) errors.push({ line, message: `traits nested deeper than ${LIMITS.depth} levels` });
      else byId.set(id, { traits: { ...byId.get(id)?.traits, ...(row.traits as object) }, line });
    }
  }
  return { byId, errors };
}

/** POST /v1/profiles/import: NDJSON, one { id, traits } per line, each line's problem named. */
async function importTraits(c: AppContext): Promise<Response> {
  const read = await readLimited(c.req.raw, IMPORT_LIMITS.bytes);
  if (!read.ok) return jsonError("payload_too_large", "imports are limited to 10 MB; split the file");
  const { byId, errors } = await parseImport(read.text);
  if (byId.size > IMPORT_LIMITS.ids) {
    return jsonError(
      "import_too_large",
      `at most ${IMPORT_LIMITS.ids} distinct ids per import request; split the file`,
    );
  }
  const ids = [...byId.keys()];
  let written = 0;
  /** Ids a store failed or kept past a deadline: when it is every one, the answer is a 503. */
  let storeFailures = 0;
  let lastFailure: "timeout" | "error" = "error";
  const now = new Date().toISOString();
  // Each id's writes have the write deadline, the whole import the bulk one: ids not begun by then
  // are reported as not written, so the request answers even when KV hangs.
  const bulk = deadlineIn(storeDeadlineMs(c.env, "bulk"));
  // A person's journeys are checked with their line, under its deadline: their object records the
  // entries and starts the Workflows instances off this request (its own waitUntil), so an import
  // waits for one call per person whose triggers read a trait, never for a workflow.
  const importOne = async (id: string, traits: Record<string, unknown>) => {
    if (await isSuppressed(c.env, id)) return "suppressed";
    const current = (await readProfile(c.env, id)) ?? emptyProfile();
    const merged = plain({ ...current.traits, ...traits });
    await writeProfile(c.env, id, { ...current, traits: merged, updatedAt: now });
    await traitsWritten(c.env, id, current.traits, merged, Date.now(), c.executionCtx);
    return "written";
  };
  const worker = async () => {
    for (let id = ids.shift(); id !== undefined; id = ids.shift()) {
      const { traits, line } = byId.get(id)!;
      const done = bulk.expired
        ? ({ ok: false, reason: "timeout", error: "the import's bulk deadline passed" } as const)
        : await withDeadline(() => importOne(id, traits), storeDeadlineMs(c.env, "write"));
      if (done.ok && done.value === "suppressed") {
        errors.push({ line, message: "suppressed: this person's data was erased" });
      } else if (done.ok) written++;
      else {
        storeFailures++;
        lastFailure = done.reason;
        errors.push({ line, message: "not written; retry this line" });
        log("warn", "import_write_failed", { reason: done.reason, error: done.error ?? null });
      }
    }
  };
  await Promise.all(Array.from({ length: IMPORT_LIMITS.concurrency }, worker));
  bulk.cancel();
  if (storeFailures > 0 && storeFailures === byId.size) return storeUnavailable(lastFailure);
  errors.sort((a, b) => a.line - b.line);
  return c.json({ written, errors });
}

/** GET /v1/profiles/:id: everything held on a person; a part whose store failed is named, not hidden. */
async function exportProfile(c: AppContext): Promise<Response> {
  const id = await idParam(c);
  if (id instanceof Response) return id;
  // The parts are read side by side under one deadline (the write one: an export is not in a
  // hurry), then the experiments' rows under another; a part whose store fails is left out and
  // the failure named in `failOpen` and the fail-open header.
  const reads = deadlineIn(storeDeadlineMs(c.env, "write"));
  const [profileRead, dumpRead, aliasesRead, journeysRead] = await Promise.all([
    storeRead(c, "kv", () => readProfile(c.env, id), reads),
    storeRead(c, "do", () => exportOf(c.env, id), reads),
    storeRead(c, "kv", () => readAliases(c.env, id), reads),
    // Journey entries, the messages sent and what became of them: held by the same object.
    storeRead(c, "do", () => journeysOf(c.env, id), reads),
  ]);
  const failOpen = new Set<StoreFailure>();
  const part = <T>(read: { ok: true; value: T } | { ok: false; failure: StoreFailure }): T | null => {
    if (read.ok) return read.value;
    failOpen.add(read.failure);
    return null;
  };
  const profile = part(profileRead);
  const dump = part(dumpRead);
  const aliases = part(aliasesRead);
  const journeys = part(journeysRead) ?? [];
  reads.cancel();
  const rows = deadlineIn(storeDeadlineMs(c.env, "write"));
  const ids = [id, ...(aliases ?? [])];
  const experiments = (
    await Promise.all(
      (
        await experimentsOf(c, dump)
      ).map(
        async (experiment) =>
          part(await storeRead(c, "do", () => personRows(c.env, experiment, ids), rows))?.map((row) => ({
            experiment,
            ...row,
          })) ?? [],
      ),
    )
  ).flat();
  rows.cancel();
  if (!profile && !dump && experiments.length === 0 && journeys.length === 0) {
    // Nothing found where a store failed is not "nothing held": it is "could not look".
    if (failOpen.size)
      return storeUnavailable([...failOpen].some((f) => f.endsWith("timeout")) ? "timeout" : "error", "read");
    return jsonError("not_found", "nothing is held on this person");
  }
  const res = c.json({
    id,
    aliases: aliases ?? [],
    traits: profile?.traits ?? {},
    consent: { ...profile?.consent, ...dump?.consent },
    state: dump?.state ?? null,
    deadLetters: dump?.deadLetters ?? [],
    mergedFrom: dump?.mergedFrom ?? [],
    experiments,
    journeys,
    ...(failOpen.size ? { failOpen: [...failOpen] } : {}),
  });
  const { config } = readConfig(c.env);
  if (failOpen.size && config.DEBUG_HEADERS)
    res.headers.set(config.FAIL_OPEN_HEADER, [...failOpen].join(","));
  return res;
}

/** DELETE /v1/profiles/:id: a person erased everywhere (their aliases too) and suppressed. */
async function eraseProfile(c: AppContext): Promise<Response> {
  const id = await idParam(c);
  if (id instanceof Response) return id;
  // An erasure is done whole or answered 503 (each step is idempotent: a retry finishes it).
  const aliases = await storeCall(c, () => readAliases(c.env, id));
  if (aliases instanceof Response) return aliases;
  const dump = await storeCall(c, () => exportOf(c.env, id));
  if (dump instanceof Response) return dump;
  const experiments = await experimentsOf(c, dump);
  const ids = [id, ...aliases];
  const at = new Date().toISOString();
  const erased = await storeCall(
    c,
    () =>
      Promise.all([
        ...ids.map((one) => eraseOne(c.env, one, at)),
        // Rows recorded before login are under the anonymous ids: they go too.
        ...experiments.map((e) => forgetPerson(c.env, e, ids)),
        c.env.PROFILES.delete(aliasesKey(id)),
      ]),
    "bulk",
  );
  if (erased instanceof Response) return erased;
  // Erased here: the export carries the ids, so the warehouse deletes them too (docs/export.md).
  // Answered only once it is on the queue; a retried erasure sends it again.
  const sent = await storeCall(c, () => sendExport(c.env, [erasureRecord(id, ids, Date.parse(at))]));
  if (sent instanceof Response) return sent;
  log("info", "profile_erased", { aliases: aliases.length });
  return c.json({ erased: true, aliases: aliases.length });
}

/** Admin: traits import, export and erasure (requireAdmin is applied to /v1/profiles/*). */
export function registerProfileRoutes(api: Hono<AppEnv>): void {
  api.put("/v1/profiles/:id/traits", setTraits);
  api.post("/v1/profiles/import", importTraits);
  api.get("/v1/profiles/:id", exportProfile);
  api.delete("/v1/profiles/:id", eraseProfile);

  documentRoute({
    method: "put",
    path: "/v1/profiles/{id}/traits",
    operationId: "setTraits",
    params: { id: PERSON_ID },
    tag: "profiles",
    admin: true,
    summary: "Set traits from CRM/warehouse (merged; ?mode=replace replaces them)",
    body: TraitsSchema,
    responses: {
      200: {
        description: "the traits now held",
        schema: z.object({ id: z.string().describe("the canonical id"), traits: TraitsSchema }),
      },
      400: BAD_PERSON_ID,
      410: { description: "erased person" },
      503: storeUnavailableDoc("write", true),
    },
  });
  documentRoute({
    method: "post",
    path: "/v1/profiles/import",
    operationId: "importTraits",
    tag: "profiles",
    admin: true,
    summary: "Bulk NDJSON import, one { id, traits } per line; per-line errors",
    body: z.string().describe('one JSON object per line: {"id": "user:42", "traits": {…}}'),
    bodyContentTypes: ["application/x-ndjson"],
    responses: {
      200: {
        description: "how many people were written, and each line that was not",
        schema: z.object({
          written: z.number().int(),
          errors: z.array(z.object({ line: z.number().int(), message: z.string() })),
        }),
      },
      413: { description: "over 10 MB, or too many distinct ids in one request" },
      503: {
        ...storeUnavailableDoc("write", true),
        description: `${storeUnavailableDoc("write", true).description} (every id failed; otherwise 200 names each line not written)`,
      },
    },
  });
  documentRoute({
    method: "get",
    path: "/v1/profiles/{id}",
    operationId: "exportProfile",
    params: { id: PERSON_ID },
    tag: "privacy",
    admin: true,
    summary:
      "Export everything held on a person (traits, state, aliases, dead letters, experiment exposures, journeys and the messages sent)",
    responses: {
      200: {
        description:
          "the export; parts whose store failed or missed its deadline are left out and named in `failOpen` and the fail-open header (`kv-timeout`, `do-error`…)",
      },
      400: BAD_PERSON_ID,
      404: { description: "nothing held" },
      503: storeUnavailableDoc("read", true),
    },
  });
  documentRoute({
    method: "delete",
    path: "/v1/profiles/{id}",
    operationId: "eraseProfile",
    params: { id: PERSON_ID },
    tag: "privacy",
    admin: true,
    summary: "Erase a person everywhere and suppress them",
    responses: {
      200: { description: "erased" },
      400: BAD_PERSON_ID,
      503: {
        ...storeUnavailableDoc("write", true),
        description: `${storeUnavailableDoc("write", true).description}; retry to finish the erasure`,
      },
    },
  });
}
