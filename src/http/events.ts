import type { Context, Hono } from "hono";
import type { z } from "zod";
import type { VisitorEvent } from "../core/model.ts";
import { readConfig } from "../edge/config.ts";
import type { Env } from "../edge/env.ts";
import { activeRules } from "../edge/rules-loader.ts";
import { callerOf, forgetAlias, resolveCanonical, subjectOf } from "../state/identity.ts";
import { log } from "../state/log.ts";
import {
  aliasesKey,
  aliasKey,
  findForbiddenKey,
  forgetTraits,
  type MergeStrategy,
  mergeTraits,
  readProfile,
  suppressedKey,
  writeProfile,
} from "../state/profiles.ts";
import type { VisitorDump } from "../state/visitor-do.ts";
import {
  canonicalForUser,
  issueVisitorId,
  verifyIdentityToken,
  visitorCookieHeader,
} from "../state/visitor-id.ts";
import { depthExceeds, readLimited } from "./body.ts";
import { invalidRequest, issuesOf, jsonError } from "./errors.ts";
import { documentRoute } from "./openapi.ts";
import {
  ConsentRequestSchema,
  EventSchema,
  EventsRequestSchema,
  EventsResponseSchema,
  IdentifyRequestSchema,
} from "./schemas.ts";

type AppEnv = { Bindings: Env };
type C = Context<AppEnv>;

/** Limits from the event pipelines users know (Segment, RudderStack). */
export const LIMITS = {
  eventBytes: 32 * 1024,
  batchBytes: 500 * 1024,
  beaconBytes: 64 * 1024,
  depth: 10,
  futureMs: 5 * 60e3,
  pastMs: 7 * 86400e3,
} as const;

async function readJson(
  c: C,
  limit: number,
): Promise<{ ok: true; value: unknown } | { ok: false; response: Response }> {
  const read = await readLimited(c.req.raw, limit);
  if (!read.ok)
    return { ok: false, response: jsonError(413, "payload_too_large", `the body is over ${limit} bytes`) };
  try {
    const value: unknown = JSON.parse(read.text);
    if (depthExceeds(value, LIMITS.depth)) {
      return {
        ok: false,
        response: jsonError(400, "too_deep", `JSON nested deeper than ${LIMITS.depth} levels`),
      };
    }
    const forbidden = findForbiddenKey(value);
    if (forbidden)
      return { ok: false, response: jsonError(400, "forbidden_key", `key not allowed: ${forbidden}`) };
    return { ok: true, value };
  } catch {
    return { ok: false, response: jsonError(400, "invalid_json", "the body is not JSON") };
  }
}

/**
 * Resolves who the events are for: a server names them; a browser is its cookie (a new visitor
 * gets one). Returns the canonical id and any cookie to set.
 */
async function subjectFor(
  c: C,
  body: { visitorId?: string | undefined; userId?: string | undefined },
): Promise<{ id: string; setCookie: string | null } | Response> {
  const caller = await callerOf(c.req.raw, c.env);
  const { config } = readConfig(c.env);
  if (caller.kind === "server") {
    const id = await subjectOf(body, c.env);
    return id
      ? { id, setCookie: null }
      : jsonError(400, "invalid_request", "visitorId or userId is required");
  }
  if (body.visitorId || body.userId) {
    return jsonError(403, "forbidden", "browsers may only send events for their own visitor (the cookie)");
  }
  if (caller.visitorId) return { id: await resolveCanonical(c.env, caller.visitorId), setCookie: null };
  if (!config.COOKIE_SECRET) return jsonError(503, "cookies_disabled", "COOKIE_SECRET is not configured");
  const id = issueVisitorId();
  return { id, setCookie: await visitorCookieHeader(id, config) };
}

function withCookie(response: Response, cookie: string | null): Response {
  if (cookie) response.headers.append("set-cookie", cookie);
  return response;
}

/** One event checked: the stored event, or the issues that reject it (by JSON path). */
function eventIssues(
  raw: unknown,
  rawText: string,
  index: number,
  receivedAt: number,
  skew: number,
): VisitorEvent | Array<{ path: string; message: string }> {
  if (rawText.length > LIMITS.eventBytes) return [{ path: `events.${index}`, message: "event over 32 KB" }];
  const parsed = EventSchema.safeParse(raw);
  if (!parsed.success) {
    return issuesOf(parsed.error).map((i) => ({ path: `events.${index}.${i.path}`, message: i.message }));
  }
  const ts = parsed.data.ts === undefined ? receivedAt : parsed.data.ts + skew;
  if (ts > receivedAt + LIMITS.futureMs) return [{ path: `events.${index}.ts`, message: "in the future" }];
  if (ts < receivedAt - LIMITS.pastMs) return [{ path: `events.${index}.ts`, message: "older than 7 days" }];
  return {
    id: parsed.data.id,
    type: parsed.data.type,
    ts,
    channel: parsed.data.channel,
    props: parsed.data.props,
  };
}

export function registerStateRoutes(api: Hono<AppEnv>): void {
  api.post("/v1/events", async (c) => {
    const receivedAt = Date.now();
    const isBeacon = (c.req.header("content-type") ?? "").startsWith("text/plain");
    const read = await readJson(c, isBeacon ? LIMITS.beaconBytes : LIMITS.batchBytes);
    if (!read.ok) return read.response;
    const envelope = EventsRequestSchema.safeParse(read.value);
    if (!envelope.success) return invalidRequest(envelope.error);
    const subject = await subjectFor(c, envelope.data);
    if (subject instanceof Response) return subject;

    // Device clocks drift: shift sender times by (received − sent), as Snowplow and Segment do.
    const skew = envelope.data.sentAt ? receivedAt - envelope.data.sentAt : 0;
    const events: VisitorEvent[] = [];
    const rejected: Array<{ index: number; issues: Array<{ path: string; message: string }> }> = [];
    const deadLetters: Array<{ index: number; reason: string; raw: string }> = [];
    for (const [index, raw] of envelope.data.events.entries()) {
      const rawText = JSON.stringify(raw) ?? "";
      const checked = eventIssues(raw, rawText, index, receivedAt, skew);
      if (Array.isArray(checked)) {
        rejected.push({ index, issues: checked });
        deadLetters.push({
          index,
          reason: checked.map((i) => `${i.path}: ${i.message}`).join("; "),
          raw: rawText,
        });
      } else events.push(checked);
    }

    const { config } = readConfig(c.env);
    const gpc = config.RESPECT_GPC && c.req.header("sec-gpc") === "1";
    const base = { accepted: 0, duplicates: 0, stored: 0, rejected };
    if (gpc) {
      return withCookie(
        c.json({ ...base, reason: "consent" } satisfies z.infer<typeof EventsResponseSchema>, 202),
        subject.setCookie,
      );
    }
    const stub = c.env.VISITOR.get(c.env.VISITOR.idFromName(subject.id));
    const result = await stub.ingest(subject.id, events, { now: receivedAt, rejected: deadLetters });
    switch (result.status) {
      case "suppressed":
        return jsonError(410, "suppressed", "this person's data was erased; events are refused");
      case "rate_limited": {
        const res = jsonError(429, "rate_limited", "too many events for this visitor; retry later");
        res.headers.set("retry-after", String(result.retryAfterSeconds));
        return res;
      }
      case "no_consent":
        return withCookie(c.json({ ...base, reason: "consent" }, 202), subject.setCookie);
      case "stored": {
        if (result.conversions.length) {
          c.executionCtx.waitUntil(
            Promise.all(
              result.conversions.map((conv) =>
                c.env.EXPERIMENTS.get(c.env.EXPERIMENTS.idFromName(conv.experiment)).convert(
                  subject.id,
                  conv.at,
                ),
              ),
            ),
          );
        }
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

  api.post("/v1/identify", async (c) => {
    const read = await readJson(c, 8 * 1024);
    if (!read.ok) return read.response;
    const parsed = IdentifyRequestSchema.safeParse(read.value);
    if (!parsed.success) return invalidRequest(parsed.error);
    const { config } = readConfig(c.env);
    const caller = await callerOf(c.req.raw, c.env);
    let anonymousId: string | null;
    let userId: string;
    if ("token" in parsed.data) {
      if (!config.IDENTITY_SECRET)
        return jsonError(503, "identity_disabled", "IDENTITY_SECRET is not configured");
      const verified = await verifyIdentityToken(config.IDENTITY_SECRET, parsed.data.token, Date.now());
      if (!verified) return jsonError(403, "invalid_token", "the identity token is invalid or expired");
      userId = verified;
      anonymousId = caller.kind === "browser" ? caller.visitorId : null;
    } else {
      // A bare user id links a browser to a person only when a server, holding the API key, says so.
      if (caller.kind !== "server")
        return jsonError(403, "forbidden", "linking by userId needs the server API key");
      userId = parsed.data.userId;
      anonymousId = parsed.data.anonymousId;
    }
    const canonical = await canonicalForUser(userId);
    let merged = { merged: false, events: 0 };
    if (anonymousId && anonymousId !== canonical) {
      const existing = await resolveCanonical(c.env, anonymousId);
      const rules = await activeRules(c.env, c.executionCtx);
      if (existing !== anonymousId && existing !== canonical && !rules?.compiled.settings.allowKnownMerge) {
        return jsonError(
          409,
          "already_linked",
          "this visitor is linked to another known person; the rules do not allow merging them",
        );
      }
      const source = c.env.VISITOR.get(c.env.VISITOR.idFromName(anonymousId));
      const dump = (await source.exportAll()) as VisitorDump | null;
      if (dump)
        merged = await c.env.VISITOR.get(c.env.VISITOR.idFromName(canonical)).absorb(
          anonymousId,
          dump,
          Date.now(),
        );
      const anonProfile = await readProfile(c.env, anonymousId);
      if (anonProfile) {
        const known = (await readProfile(c.env, canonical)) ?? { traits: {}, consent: {}, updatedAt: "" };
        const strategies = (rules?.compiled.settings.traitMerge ?? {}) as Record<string, MergeStrategy>;
        await writeProfile(c.env, canonical, {
          traits: mergeTraits(known.traits, anonProfile.traits, strategies),
          consent: { ...anonProfile.consent, ...known.consent },
          updatedAt: new Date().toISOString(),
        });
      }
      await c.env.PROFILES.put(aliasKey(anonymousId), canonical);
      const aliases = new Set((await c.env.PROFILES.get<string[]>(aliasesKey(canonical), "json")) ?? []);
      aliases.add(anonymousId);
      await c.env.PROFILES.put(aliasesKey(canonical), JSON.stringify([...aliases]));
      forgetAlias(anonymousId);
    }
    log("info", "identified", { merged: merged.merged, events: merged.events });
    const response = c.json({ visitorId: canonical, merged: merged.merged, mergedEvents: merged.events });
    // The browser carries the canonical id from now on: no alias lookup on its page views.
    if (caller.kind === "browser" && config.COOKIE_SECRET) {
      response.headers.append("set-cookie", await visitorCookieHeader(canonical, config));
    }
    return response;
  });

  api.post("/v1/consent", async (c) => {
    const read = await readJson(c, 8 * 1024);
    if (!read.ok) return read.response;
    const parsed = ConsentRequestSchema.safeParse(read.value);
    if (!parsed.success) return invalidRequest(parsed.error);
    const subject = await subjectFor(c, parsed.data);
    if (subject instanceof Response) return subject;
    const consent = await c.env.VISITOR.get(c.env.VISITOR.idFromName(subject.id)).setConsent(
      parsed.data.purposes,
    );
    const profile = (await readProfile(c.env, subject.id)) ?? { traits: {}, consent: {}, updatedAt: "" };
    await writeProfile(c.env, subject.id, {
      ...profile,
      consent: { ...profile.consent, ...consent },
      updatedAt: new Date().toISOString(),
    });
    return withCookie(c.json({ consent }), subject.setCookie);
  });

  documentRoute({
    method: "post",
    path: "/v1/events",
    tag: "events",
    server: true,
    summary: "Record a batch of behavioural events (JSON, or text/plain from navigator.sendBeacon)",
    body: EventsRequestSchema,
    bodyContentTypes: ["application/json", "text/plain"],
    responses: {
      202: { description: "stored durably; per-event rejections by index", schema: EventsResponseSchema },
      410: { description: "the person was erased" },
      413: { description: "body over 500 KB (64 KB for beacons)" },
      429: { description: "per-visitor rate cap; see Retry-After" },
    },
  });
  documentRoute({
    method: "post",
    path: "/v1/identify",
    tag: "identity",
    server: true,
    summary: "Link the anonymous visitor to a known person (signed token from a browser, or the server key)",
    body: IdentifyRequestSchema,
    responses: {
      200: { description: "linked; history merged" },
      403: { description: "not allowed" },
      409: { description: "already linked to another person" },
    },
  });
  documentRoute({
    method: "post",
    path: "/v1/consent",
    tag: "privacy",
    server: true,
    summary: "Set consent per purpose",
    body: ConsentRequestSchema,
    responses: { 200: { description: "the consent now held" } },
  });
}

/** Admin: traits import, export and erasure. */
export function registerProfileRoutes(api: Hono<AppEnv>): void {
  const idOf = async (c: C) => {
    const raw = c.req.param("id") ?? "";
    return raw.startsWith("user:") ? canonicalForUser(raw.slice(5)) : resolveCanonical(c.env, raw);
  };

  api.put("/v1/profiles/:id/traits", async (c) => {
    const read = await readJson(c, 64 * 1024);
    if (!read.ok) return read.response;
    if (!read.value || typeof read.value !== "object" || Array.isArray(read.value)) {
      return jsonError(400, "invalid_request", "traits must be a JSON object");
    }
    const id = await idOf(c);
    const replace = c.req.query("mode") === "replace";
    const current = (await readProfile(c.env, id)) ?? { traits: {}, consent: {}, updatedAt: "" };
    const traits = replace ? { ...(read.value as object) } : { ...current.traits, ...(read.value as object) };
    await writeProfile(c.env, id, { ...current, traits, updatedAt: new Date().toISOString() });
    return c.json({ id, traits });
  });

  api.post("/v1/profiles/import", async (c) => {
    const read = await readLimited(c.req.raw, 10 * 1024 * 1024);
    if (!read.ok) return jsonError(413, "payload_too_large", "imports are limited to 10 MB; split the file");
    const errors: Array<{ line: number; message: string }> = [];
    // KV allows about one write per second per key: the lines of one id are merged into one write.
    const byId = new Map<string, Record<string, unknown>>();
    for (const [i, line] of read.text.split("\n").entries()) {
      if (!line.trim()) continue;
      let row: { id?: unknown; traits?: unknown };
      try {
        row = JSON.parse(line);
      } catch {
        errors.push({ line: i + 1, message: "not JSON" });
        continue;
      }
      const forbidden = findForbiddenKey(row.traits);
      if (typeof row.id !== "string" || !row.id) errors.push({ line: i + 1, message: "id must be a string" });
      else if (!row.traits || typeof row.traits !== "object")
        errors.push({ line: i + 1, message: "traits must be an object" });
      else if (forbidden) errors.push({ line: i + 1, message: `key not allowed: ${forbidden}` });
      else byId.set(row.id, { ...byId.get(row.id), ...(row.traits as object) });
    }
    const ids = [...byId.keys()];
    let written = 0;
    const worker = async () => {
      for (let id = ids.shift(); id !== undefined; id = ids.shift()) {
        const canonical = id.startsWith("user:") ? await canonicalForUser(id.slice(5)) : id;
        const current = (await readProfile(c.env, canonical)) ?? { traits: {}, consent: {}, updatedAt: "" };
        await writeProfile(c.env, canonical, {
          ...current,
          traits: { ...current.traits, ...byId.get(id) },
          updatedAt: new Date().toISOString(),
        });
        written++;
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    return c.json({ written, errors });
  });

  api.get("/v1/profiles/:id", async (c) => {
    const id = await idOf(c);
    const [profile, dump, aliases] = await Promise.all([
      readProfile(c.env, id),
      c.env.VISITOR.get(c.env.VISITOR.idFromName(id)).exportAll() as Promise<VisitorDump | null>,
      c.env.PROFILES.get<string[]>(aliasesKey(id), "json"),
    ]);
    if (!profile && !dump) return jsonError(404, "not_found", "nothing is held on this person");
    return c.json({
      id,
      aliases: aliases ?? [],
      traits: profile?.traits ?? {},
      consent: { ...profile?.consent, ...dump?.consent },
      state: dump?.state ?? null,
      deadLetters: dump?.deadLetters ?? [],
    });
  });

  api.delete("/v1/profiles/:id", async (c) => {
    const id = await idOf(c);
    const aliases = (await c.env.PROFILES.get<string[]>(aliasesKey(id), "json")) ?? [];
    const dump = (await c.env.VISITOR.get(c.env.VISITOR.idFromName(id)).exportAll()) as VisitorDump | null;
    const experiments = Object.keys(dump?.state.assignments ?? {});
    await Promise.all([
      c.env.VISITOR.get(c.env.VISITOR.idFromName(id)).erase(),
      ...aliases.map((a) => c.env.VISITOR.get(c.env.VISITOR.idFromName(a)).erase()),
      ...experiments.map((e) => c.env.EXPERIMENTS.get(c.env.EXPERIMENTS.idFromName(e)).forget(id)),
      c.env.PROFILES.delete(`profile:${id}`).then(() => forgetTraits(id)),
      c.env.PROFILES.delete(aliasesKey(id)),
      ...aliases.map((a) => c.env.PROFILES.delete(aliasKey(a))),
      c.env.PROFILES.put(suppressedKey(id), JSON.stringify({ at: new Date().toISOString() })),
    ]);
    for (const a of aliases) forgetAlias(a);
    log("info", "profile_erased", { aliases: aliases.length });
    return c.json({ erased: true, aliases: aliases.length });
  });
}
