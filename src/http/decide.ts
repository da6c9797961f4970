import type { Hono } from "hono";
import * as z from "zod";
import { type DecisionResult, decide } from "../core/decide.ts";
import type { RequestContext, VisitorEvent } from "../core/model.ts";
import { decisionConsent, gpcSignal, type PrivacyFacts, privacyVerdict } from "../core/privacy.ts";
import { apiContext, isBot } from "../edge/context.ts";
import { decisionRecorder } from "../edge/personalize.ts";
import { countConversions } from "../measure/experiment-object.ts";
import { bearerIs } from "../platform/bearer.ts";
import { readConfig } from "../platform/config.ts";
import { deadlineIn, withDeadline } from "../platform/deadline.ts";
import type { Env } from "../platform/env.ts";
import { type Caller, callerOf, subjectOf } from "../state/identity.ts";
import { readTraits } from "../state/profiles.ts";
import { activeRules, type LoadedRules, servingFallback } from "../state/rules-loader.ts";
import { type IngestResult, visitorObject } from "../state/visitor-object.ts";
import type { AppContext, AppEnv } from "./app-env.ts";
import { type Issue, invalidRequest, jsonError } from "./errors.ts";
import { limitWrite, RATE_LIMITED_DOC } from "./limits.ts";
import { documentRoute } from "./openapi.ts";
import { checkEvent, clockSkew, LIMITS, readBody } from "./request.ts";
import { DecideRequestSchema, type DecideResponse, DecideResponseSchema } from "./schemas.ts";
import { storeDeadlineMs } from "./store-calls.ts";

/** A decide call as parsed (its defaults filled in). */
type DecideRequest = z.infer<typeof DecideRequestSchema>;
type DecisionBody = DecideResponse["decisions"][string];
type FailOpen = Set<DecideResponse["failOpen"][number]>;

/**
 * The answer, whatever happened: always private (a person's decisions), and when a store or the
 * rules failed, the reasons in the fail-open header (`x-northstar-fail-open` unless configured; the
 * page path's words: rules, do-error, do-timeout, kv-error, kv-timeout) as well as in the body's
 * `failOpen`.
 */
function respond(c: AppContext, body: DecideResponse): Response {
  const res = c.json(body);
  res.headers.set("cache-control", "private, no-store");
  const { config } = readConfig(c.env);
  if (body.failOpen.length && config.DEBUG_HEADERS)
    res.headers.set(config.FAIL_OPEN_HEADER, body.failOpen.join(","));
  return res;
}

/**
 * The JSON decision API: the same engine and rules as the proxy, for apps, email/SMS senders and
 * kiosks. Events sent with the call are recorded first and count in the decision (one round trip).
 *
 * Fails open like a page: a store that errs or misses its deadline is decided without (defaults
 * where the rules have them), never a 5xx, and the answer says which store failed.
 */
async function decideFor(
  c: AppContext,
  body: DecideRequest,
  explain: boolean,
  caller: Caller,
  looking = false,
): Promise<Response> {
  const now = Date.now();
  // A Set: the same store failing twice (events, then the state) is one reason.
  const failOpen: FailOpen = new Set();
  const visitorId = await visitorFor(c, body, caller, failOpen);
  if (visitorId instanceof Response) return visitorId;
  const events = checkEvents(body, now);
  if (events instanceof Response) return events;

  const rules = await activeRules(c.env, c.executionCtx, storeDeadlineMs(c.env, "read"));
  if (servingFallback(rules)) failOpen.add("rules-bundled");
  const { config } = readConfig(c.env);
  // Under Global Privacy Control the call's events are not stored (as on POST /v1/events) and the
  // decision uses the request alone; the visitor's object applies its own consent to the rest.
  const gpc = gpcSignal(c.req.raw.headers, config.RESPECT_GPC);
  if (events.length && !gpc) {
    const refused = await storeEvents(c, visitorId, events, now, failOpen);
    if (refused) return refused;
  }
  if (!rules) {
    // No rules at all (neither KV nor the bundled ones): nothing is known of the placements.
    failOpen.add("rules");
    return respond(c, withoutRules(visitorId, body.placements ?? [], failOpen));
  }
  return decideWithRules(c, { body, explain, caller, visitorId, rules, now, gpc, failOpen, looking });
}

/**
 * Who the decision is for: a server names a visitor or user (its alias read from KV under the read
 * deadline); a browser is its own cookie, and may name nobody else.
 */
async function visitorFor(
  c: AppContext,
  body: DecideRequest,
  caller: Caller,
  failOpen: FailOpen,
): Promise<string | Response> {
  let visitorId: string | null;
  if (caller.kind === "server") {
    const subject = await withDeadline(() => subjectOf(body, c.env), storeDeadlineMs(c.env, "read"));
    if (subject.ok) visitorId = subject.value;
    else {
      // Only an anonymous id's alias is read from KV; its own object forwards to the person it
      // was merged into, so the id as given still reaches the right state.
      failOpen.add(`kv-${subject.reason}`);
      visitorId = body.visitorId ?? null;
    }
  } else if (body.visitorId || body.userId) {
    return jsonError(
      "forbidden",
      "without the server API key, decisions are only for the caller's own visitor cookie",
    );
  } else visitorId = caller.visitorId;
  return (
    visitorId ??
    jsonError("invalid_request", "visitorId or userId is required", {
      issues: [{ path: "visitorId", message: "required" }],
    })
  );
}

/**
 * Checked as POST /v1/events checks them (size, time window, skew, allow-listed build). Events
 * answers a bad event by index and stores the rest; a decision counts its events, so a bad one
 * refuses the whole call, with the same issue paths and messages.
 */
function checkEvents(body: DecideRequest, now: number): VisitorEvent[] | Response {
  const events: VisitorEvent[] = [];
  const issues: Issue[] = [];
  const skew = clockSkew(body.sentAt, now);
  for (const [index, raw] of (body.events ?? []).entries()) {
    const checked = checkEvent(raw, index, now, skew);
    if ("issues" in checked) issues.push(...checked.issues);
    else events.push(checked.event);
  }
  return issues.length ? jsonError("invalid_request", "an event is invalid", { issues }) : events;
}

/**
 * The call's events, stored before the decision so they count in it, under the write deadline. A
 * store that fails is named in `failOpen` and the decision goes on; an erased or capped visitor
 * refuses the call (the answer returned).
 */
async function storeEvents(
  c: AppContext,
  visitorId: string,
  events: VisitorEvent[],
  now: number,
  failOpen: FailOpen,
): Promise<Response | null> {
  const { config } = readConfig(c.env);
  const stored = await withDeadline(
    () =>
      visitorObject(c.env, visitorId).ingest(visitorId, events, {
        now,
        consentMode: config.CONSENT_MODE,
      }) as Promise<IngestResult>,
    storeDeadlineMs(c.env, "write"),
  );
  if (!stored.ok) failOpen.add(`do-${stored.reason}`);
  else if (stored.value.status === "suppressed")
    return jsonError("suppressed", "this person's data was erased");
  else if (stored.value.status === "rate_limited")
    return jsonError("rate_limited", "too many events for this visitor");
  else if (stored.value.status === "stored" && stored.value.conversions.length)
    // A goal reached through a decide call counts as it does through /v1/events.
    c.executionCtx.waitUntil(countConversions(c.env, visitorId, stored.value.conversions));
  return null;
}

/** Without rules, each placement asked for gets an empty decision: the caller shows its own. */
function withoutRules(visitorId: string, placements: readonly string[], failOpen: FailOpen): DecideResponse {
  const decisions: Record<string, DecisionBody> = {};
  for (const placement of placements) {
    decisions[placement] = {
      experience: null,
      variant: null,
      reason: "FAILED_OPEN",
      ruleIndex: null,
      content: { html: null, json: null },
      ttl: 0,
    };
  }
  return {
    visitorId,
    rulesVersion: null,
    decisions,
    segments: [],
    intent: { top: null, scores: {} },
    outbound: null,
    unknownPlacements: [],
    failOpen: [...failOpen],
  };
}

interface DecisionCall {
  readonly body: DecideRequest;
  readonly explain: boolean;
  readonly caller: Caller;
  readonly visitorId: string;
  readonly rules: LoadedRules;
  readonly now: number;
  readonly gpc: boolean;
  readonly failOpen: FailOpen;
  /** An admin looking (GET /v1/explain): nothing the decision made is kept or counted. */
  readonly looking: boolean;
}

/**
 * The visitor's state and traits read side by side under the read deadline, the privacy gate, the
 * decision, and the writes it leaves (off the critical path).
 */
async function decideWithRules(c: AppContext, call: DecisionCall): Promise<Response> {
  const { body, explain, caller, visitorId, rules, now, gpc, failOpen, looking } = call;
  const { config } = readConfig(c.env);
  const stub = visitorObject(c.env, visitorId);
  const reads = deadlineIn(storeDeadlineMs(c.env, "read"));
  const [stateRead, traitsRead] = await Promise.all([
    withDeadline(() => stub.snapshot({ now, eventsSince: now - rules.compiled.eventHorizonMs }), reads),
    withDeadline(() => readTraits(c.env, visitorId), reads),
  ]);
  reads.cancel();
  if (!stateRead.ok) failOpen.add(`do-${stateRead.reason}`);
  if (!traitsRead.ok) failOpen.add(`kv-${traitsRead.reason}`);
  // Consent lives with the traits. Unread, it is unknown: the gate decides as for someone who said
  // no (request context only, defaults otherwise) rather than personalize a person who may have.
  const privacyFacts: PrivacyFacts = {
    mode: config.CONSENT_MODE,
    gpc,
    consent: traitsRead.ok ? (traitsRead.value?.consent ?? {}) : null,
    erased: false,
  };
  const privacy = privacyVerdict(privacyFacts);
  const result = decide(rules.compiled, {
    visitorId,
    now,
    traits: traitsRead.ok && traitsRead.value ? traitsRead.value.traits : {},
    state: stateRead.ok ? stateRead.value : null,
    context: callContext(body, caller, c.req.raw),
    consent: decisionConsent(privacyFacts, privacy),
    placements: body.placements,
    explain,
    // Segments are evaluated only when asked for (the default, docs/decisions.md record 18) or
    // shown in an explanation.
    segments: body.segments !== false || explain,
  });
  const bot = caller.kind === "browser" && isBot(c.req.header("user-agent") ?? null, config.BOT_USER_AGENTS);
  // Without the stored state the decision cannot know the visitor's assignments or exposures:
  // writing what it made of them would count an arm the visitor may never have been in.
  const record =
    !bot && !looking && stateRead.ok && !stateRead.value.erased && privacy.measure
      ? decisionRecorder(c.env, {
          visitorId,
          exportId: stateRead.value.visitorId,
          result,
          now,
          privacy: { consentMode: config.CONSENT_MODE, gpc },
          rulesVersion: rules.version,
        })
      : null;
  // The recorder never rejects: a write that fails is logged and counted where it fails.
  if (record) c.executionCtx.waitUntil(record());
  return respond(c, answerOf(visitorId, rules.version, result, explain, failOpen));
}

/**
 * The decision's context. A server's call comes from the sender's own machine: the zone Cloudflare
 * sees for it is that machine's, not the person's, so only a zone the caller states counts as the
 * request's (outbound timing then reads the person's trait or events instead). A browser's call is
 * the person's own: its zone is theirs.
 */
function callContext(body: DecideRequest, caller: Caller, request: Request): RequestContext {
  const context = apiContext(body.channel, body.context, request);
  if (caller.kind !== "server" || body.context.timezone !== undefined || context.geo.timezone === null)
    return context;
  return { ...context, geo: { ...context.geo, timezone: null } };
}

/** The engine's result in the API's words. */
function answerOf(
  visitorId: string,
  rulesVersion: string,
  result: DecisionResult,
  explain: boolean,
  failOpen: FailOpen,
): DecideResponse {
  const decisions: Record<string, DecisionBody> = {};
  for (const decision of result.decisions) {
    decisions[decision.placement] = {
      experience: decision.experience,
      variant: decision.variant,
      reason: decision.reason,
      ruleIndex: decision.ruleIndex,
      content: {
        html: decision.html,
        json: decision.json,
        ...(decision.items ? { items: [...decision.items] } : {}),
      },
      ttl: decision.ttl,
    };
  }
  return {
    visitorId,
    rulesVersion,
    decisions,
    segments: [...result.segments],
    intent: { top: result.intent.top, scores: { ...result.intent.scores } },
    outbound: result.outbound,
    unknownPlacements: [...result.unknownPlacements],
    failOpen: [...failOpen],
    ...(explain && result.explanation
      ? {
          explanation: Object.fromEntries(
            Object.entries(result.explanation).map(([placement, traces]) => [placement, [...traces]]),
          ),
        }
      : {}),
  };
}

/**
 * The admin token may do on this route what the server key may (it can already read any
 * visitor's explanation through GET /v1/explain); a browser speaks only for its own cookie.
 */
async function decideCaller(request: Request, env: Env): Promise<Caller> {
  if (await bearerIs(request, readConfig(env).config.ADMIN_TOKEN)) return { kind: "server" };
  return callerOf(request, env);
}

export const ExplainQuerySchema = z.strictObject({
  visitorId: z.string().optional(),
  userId: z.string().optional(),
  url: z.url().optional(),
  channel: z.string().default("web"),
});

/** POST /v1/decide: the body read and limited, the caller known, then the decision. */
async function decideRoute(c: AppContext): Promise<Response> {
  const parsed = await readBody(c.req.raw, LIMITS.batchBytes, DecideRequestSchema);
  if (!parsed.ok) return parsed.response;
  const caller = await decideCaller(c.req.raw, c.env);
  // A decision that carries events is a write: limited as every write is (src/http/limits.ts).
  if (parsed.data.events?.length) {
    const limited = await limitWrite(c, caller);
    if (limited) return limited;
  }
  // An explanation names every audience condition and the traits it read: it is for the site's
  // servers and admins, never for a browser, whatever its body asks.
  const explain = parsed.data.explain && caller.kind === "server";
  return decideFor(c, parsed.data, explain, caller);
}

/** GET /v1/explain: a decision with its full trace, for an admin. */
async function explainRoute(c: AppContext): Promise<Response> {
  const parsed = ExplainQuerySchema.safeParse(c.req.query());
  if (!parsed.success) return invalidRequest(parsed.error);
  const url = parsed.data.url ? new URL(parsed.data.url) : null;
  const body = DecideRequestSchema.safeParse({
    visitorId: parsed.data.visitorId,
    userId: parsed.data.userId,
    channel: parsed.data.channel,
    context: url ? { url: url.toString() } : {},
    explain: true,
  });
  if (!body.success) return invalidRequest(body.error);
  // Explain is an admin route (requireAdmin): like a server sender, it may name anyone. It only
  // looks: explaining a person must not assign them to an experiment or count an exposure.
  return decideFor(c, body.data, true, { kind: "server" }, true);
}

export function registerDecideRoutes(api: Hono<AppEnv>): void {
  api.post("/v1/decide", decideRoute);
  api.get("/v1/explain", explainRoute);

  documentRoute({
    method: "post",
    path: "/v1/decide",
    operationId: "decide",
    tag: "decisions",
    server: true,
    summary: "Decisions for a visitor or user on a channel (events in the same call count first)",
    body: DecideRequestSchema,
    responses: {
      200: { description: "a decision per placement", schema: DecideResponseSchema },
      429: { ...RATE_LIMITED_DOC, description: `${RATE_LIMITED_DOC.description} (calls with events)` },
    },
  });
  documentRoute({
    method: "get",
    path: "/v1/explain",
    operationId: "explainDecision",
    tag: "admin",
    admin: true,
    summary: "Why a visitor gets what they get: scores, segments, every candidate and why it won or lost",
    query: ExplainQuerySchema,
    responses: { 200: { description: "the decision with its full trace", schema: DecideResponseSchema } },
  });
}
