import type { Hono } from "hono";
import type * as z from "zod";
import { gpcSignal, privacyVerdict } from "../core/privacy.ts";
import { rekeyVisitor } from "../measure/experiment-object.ts";
import { type Config, readConfig } from "../platform/config.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { sendExport } from "../state/export-producer.ts";
import { identityLinkRecord } from "../state/export-record.ts";
import { type Caller, callerOf, forgetAlias, isKnownId, resolveCanonical } from "../state/identity.ts";
import {
  aliasKey,
  emptyProfile,
  forgetTraits,
  isSuppressed,
  type MergeStrategy,
  mergeTraits,
  profileKey,
  readAliases,
  readProfile,
  writeAliases,
  writeProfile,
} from "../state/profiles.ts";
import { activeRules } from "../state/rules-loader.ts";
import { traitsWritten } from "../state/traits-written.ts";
import {
  canonicalForUser,
  type IdentityClaim,
  type IdentityTokenRefusal,
  verifyIdentityToken,
  visitorCookieHeader,
} from "../state/visitor-id.ts";
import { type MergeResult, visitorObject } from "../state/visitor-object.ts";
import type { AppContext, AppEnv } from "./app-env.ts";
import { jsonError } from "./errors.ts";
import { limitWrite, RATE_LIMITED_DOC } from "./limits.ts";
import { documentRoute } from "./openapi.ts";
import { LIMITS, readBody } from "./request.ts";
import { IdentifyRequestSchema } from "./schemas.ts";
import { storeCall, storeUnavailableDoc } from "./store-calls.ts";

/** Aliases kept per person (for export and erasure): far more devices than anyone has. */
const MAX_ALIASES = 1000;

/**
 * Records `alias` → `canonical` in KV, and `alias` in the person's alias list. Skips writes that
 * would change nothing: a login on every page must not hit KV's one write per second per key.
 */
async function linkAlias(env: Env, alias: string, canonical: string, extra: readonly string[] = []) {
  const writes: Promise<void>[] = [];
  if ((await env.PROFILES.get(aliasKey(alias))) !== canonical) {
    writes.push(env.PROFILES.put(aliasKey(alias), canonical));
  }
  const list = await readAliases(env, canonical);
  const next = [...new Set([...list, alias, ...extra])].slice(-MAX_ALIASES);
  if (next.length !== list.length || next.some((a, i) => list[i] !== a)) {
    writes.push(writeAliases(env, canonical, next));
  }
  // The page path reads the cookie id's profile key in any case: a pointer there takes a browser
  // still holding its anonymous cookie to the person's traits and consent without an alias read.
  if (!isKnownId(alias)) {
    const held = await readProfile(env, alias);
    if (held?.canonical !== canonical)
      writes.push(
        writeProfile(env, alias, { ...emptyProfile(), updatedAt: new Date().toISOString(), canonical }),
      );
  }
  await Promise.all(writes);
  forgetAlias(alias);
}

/**
 * The anonymous profile's traits (if any) folded into the known one, by the rules' strategies.
 * Idempotent, so a retried identify finishes what a failed one left undone: the person's profile
 * remembers which profiles were folded into it (an `add` strategy must not count one twice), and
 * the anonymous copy goes only after the person's is written.
 */
async function mergeProfiles(
  env: Env,
  from: string,
  into: string,
  strategies: Readonly<Record<string, MergeStrategy>>,
): Promise<void> {
  const source = await readProfile(env, from);
  // Nothing held, or only the pointer a finished identify leaves: nothing to fold.
  if (!source || source.canonical) return;
  const known = (await readProfile(env, into)) ?? emptyProfile();
  const folded = known.mergedFrom?.includes(from) ?? false;
  const traits = folded ? known.traits : mergeTraits(known.traits, source.traits, strategies);
  if (!folded) {
    await writeProfile(env, into, {
      traits,
      // The known person's answers win; the anonymous visitor's fill purposes never answered.
      consent: { ...source.consent, ...known.consent },
      updatedAt: new Date().toISOString(),
      mergedFrom: [...(known.mergedFrom ?? []), from].slice(-MAX_ALIASES),
    });
  }
  // The person's journeys see the traits the visitor brought (a retry tells the object again).
  await traitsWritten(env, into, known.traits, traits, Date.now());
  // The traits now live with the person; an anonymous copy would outlive an erasure of them. (A
  // known person merged by the rules keeps theirs: their own user id still reads it.)
  if (!isKnownId(from)) {
    await env.PROFILES.delete(profileKey(from));
    forgetTraits(from);
  }
}

type IdentifyRequest = z.infer<typeof IdentifyRequestSchema>;

/** Who is signing in, and on what: the person's id, the anonymous visitor, and a token to spend. */
interface Claim {
  readonly userId: string;
  readonly anonymousId: string | null;
  /** The signed token's claim, when the browser's word comes from one: spent once it is honoured. */
  readonly token: IdentityClaim | null;
}

/**
 * POST /v1/identify: who may say "this browser is that person" (`claimOf`), whether either side
 * was erased, the privacy gate, the token spent, then the anonymous visitor linked to the person
 * (`linkVisitor`) and the browser given the person's cookie.
 */
async function identify(c: AppContext): Promise<Response> {
  const parsed = await readBody(c.req.raw, LIMITS.smallBytes, IdentifyRequestSchema);
  if (!parsed.ok) return parsed.response;
  const { config } = readConfig(c.env);
  const caller = await callerOf(c.req.raw, c.env);
  const limited = await limitWrite(c, caller);
  if (limited) return limited;
  const now = Date.now();
  const claim = await claimOf(parsed.data, caller, config, now);
  if (claim instanceof Response) return claim;
  const canonical = await canonicalForUser(claim.userId);
  // Every store call below has a deadline (storeCall): one that fails answers 503, and a retry is
  // safe (each step is idempotent; a token already spent is refused, and the site signs a new one).
  const anonymousId = await unlessErased(c, canonical, claim.anonymousId, caller);
  if (anonymousId instanceof Response) return anonymousId;
  const gate = await gateOf(c, canonical, anonymousId, caller);
  if (gate instanceof Response) return gate;
  if (claim.token) {
    const spent = await spendToken(c, canonical, claim.token, now);
    if (spent) return spent;
  }
  const linked =
    anonymousId && anonymousId !== canonical
      ? await linkVisitor(c, anonymousId, canonical, caller, now)
      : NOTHING_LINKED;
  if (linked instanceof Response) return linked;
  const { merged, switched } = linked;
  if (anonymousId && anonymousId !== canonical && !switched && gate.measure) {
    // The link is made: out to the export before the answer (a retried identify sends the same id).
    const sent = await storeCall(c, () =>
      sendExport(c.env, [identityLinkRecord(anonymousId, canonical, now)]),
    );
    if (sent instanceof Response) return sent;
  }
  log("info", "identified", { merged: merged.merged, events: merged.events, switched, via: caller.kind });
  const response = c.json({
    visitorId: canonical,
    merged: merged.merged,
    mergedEvents: merged.events,
    linked: true,
    // The browser now belongs to this person; nothing of the previous one came along.
    ...(switched ? { switched: true } : {}),
  });
  // The browser carries the canonical id from now on: no alias lookup on its page views.
  if (caller.kind === "browser" && config.COOKIE_SECRET) {
    response.headers.append("set-cookie", await visitorCookieHeader(canonical, config));
  }
  return response;
}

/**
 * Who may say "this browser is that person": a token signed by the site's backend, or a server
 * holding the API key. A bare user id from a browser proves nothing.
 */
async function claimOf(
  request: IdentifyRequest,
  caller: Caller,
  config: Config,
  now: number,
): Promise<Claim | Response> {
  if (!("token" in request)) {
    if (caller.kind !== "server")
      return jsonError("forbidden", "linking by userId needs the server API key or a signed token");
    return { userId: request.userId, anonymousId: request.anonymousId, token: null };
  }
  if (!config.IDENTITY_SECRET) return jsonError("identity_disabled", "IDENTITY_SECRET is not configured");
  const checked = await verifyIdentityToken(config.IDENTITY_SECRET, request.token, {
    nowMs: now,
    maxLifetimeSeconds: config.IDENTITY_TOKEN_MAX_TTL_SECONDS,
  });
  if (!checked.ok) return tokenRefused(checked.reason, config.IDENTITY_TOKEN_MAX_TTL_SECONDS);
  return {
    userId: checked.claim.userId,
    anonymousId: caller.kind === "browser" ? caller.visitorId : null,
    token: checked.claim,
  };
}

/**
 * An erased person cannot be re-identified, nor can a server link an erased visitor. A browser
 * whose cookie belongs to an erased person: the one signing in now gets the browser, and nothing of
 * the erased id is linked to them (the anonymous id answered is then null).
 */
async function unlessErased(
  c: AppContext,
  canonical: string,
  anonymousId: string | null,
  caller: Caller,
): Promise<string | null | Response> {
  const erased = await storeCall(c, () =>
    Promise.all([isSuppressed(c.env, canonical), anonymousId ? isSuppressed(c.env, anonymousId) : false]),
  );
  if (erased instanceof Response) return erased;
  const [personErased, visitorErased] = erased;
  if (personErased || (visitorErased && caller.kind === "server")) return personWasErased();
  return visitorErased ? null : anonymousId;
}

/**
 * The privacy gate, before anything is written or set: Global Privacy Control from the browser,
 * and the anonymous visitor's own answer (under opt-in, nothing is linked before a grant). A
 * refusal links, stores and sets nothing, and says why (the answer returned); a link it allows is
 * exported only when it allows measurement too.
 */
async function gateOf(
  c: AppContext,
  canonical: string,
  anonymousId: string | null,
  caller: Caller,
): Promise<Response | { readonly measure: boolean }> {
  const { config } = readConfig(c.env);
  const gpc = gpcSignal(c.req.raw.headers, config.RESPECT_GPC);
  const held = anonymousId ? await storeCall(c, () => visitorObject(c.env, anonymousId).heldPrivacy()) : null;
  if (held instanceof Response) return held;
  const gate = privacyVerdict({
    mode: config.CONSENT_MODE,
    gpc,
    consent: held?.consent ?? {},
    erased: held?.erased ?? false,
  });
  if (gate.link) return { measure: gate.measure };
  log("info", "identify_refused", { reason: gate.blocked, via: caller.kind });
  return c.json({
    visitorId: canonical,
    merged: false,
    mergedEvents: 0,
    linked: false,
    reason: gate.blocked,
  });
}

/**
 * One use per token, recorded by the person's own object (strongly consistent, unlike KV): a
 * token read from a log, a proxy or a browser's history cannot sign anyone in again.
 */
async function spendToken(
  c: AppContext,
  canonical: string,
  token: IdentityClaim,
  now: number,
): Promise<Response | null> {
  const { config } = readConfig(c.env);
  const { tokenId, expiresAtMs } = token;
  const spend = await storeCall(c, () =>
    visitorObject(c.env, canonical).spendIdentityToken(tokenId, expiresAtMs, now),
  );
  if (spend instanceof Response) return spend;
  if (spend === "erased") return personWasErased();
  if (spend === "replayed") return tokenRefused("replayed", config.IDENTITY_TOKEN_MAX_TTL_SECONDS);
  return null;
}

interface Linked {
  readonly merged: MergeResult;
  /**
   * Another person signed in on a browser that carries someone else's id (a shared or family
   * computer): their histories are never merged, and the browser becomes the new person's, so
   * the previous person's profile neither shows to them nor receives their events.
   */
  readonly switched: boolean;
}

const NOTHING_LINKED: Linked = { merged: { merged: false, events: 0 }, switched: false };

/**
 * The anonymous visitor handed over to the person: its history merged by its object, its profile's
 * traits folded in, its experiment rows re-keyed, and the alias recorded. Two known people are
 * merged only when the rules allow it; otherwise a server is refused and a browser switched.
 */
async function linkVisitor(
  c: AppContext,
  anonymousId: string,
  canonical: string,
  caller: Caller,
  now: number,
): Promise<Linked | Response> {
  const rules = await activeRules(c.env, c.executionCtx);
  const settings = rules?.compiled.settings;
  const allowKnownMerge = settings?.allowKnownMerge === true;
  let switched = false;
  // A server naming two known people asked for a merge: refused unless the rules allow it.
  // A browser proved only who is signing in now: that is a hand-over, not a merge request.
  const knownConflict = () => {
    if (allowKnownMerge) return null;
    if (caller.kind === "browser") {
      switched = true;
      return null;
    }
    return alreadyLinked();
  };
  // Already stitched elsewhere (KV), or itself a known person: two known people.
  const linked = await storeCall(c, () => resolveCanonical(c.env, anonymousId));
  if (linked instanceof Response) return linked;
  let source = anonymousId;
  if (isKnownId(linked) && linked !== canonical) {
    const refusal = knownConflict();
    if (refusal) return refusal;
    source = linked;
  }
  const handOver = (from: string) =>
    storeCall(c, () => visitorObject(c.env, from).handOver(canonical, from, now));
  let merged: MergeResult = NOTHING_LINKED.merged;
  if (!switched) {
    const handed = await handOver(source);
    if (handed instanceof Response) return handed;
    merged = handed;
  }
  if (merged.refused === "linked" && merged.linkedTo && merged.linkedTo !== canonical) {
    // The object knew better than a stale alias: the visitor is another person's already.
    const refusal = knownConflict();
    if (refusal) return refusal;
    if (!switched) {
      source = merged.linkedTo;
      const handed = await handOver(source);
      if (handed instanceof Response) return handed;
      merged = handed;
    }
  }
  if (merged.refused === "erased") return personWasErased();
  if (switched) return { merged, switched };
  const strategies = (settings?.traitMerge ?? {}) as Readonly<Record<string, MergeStrategy>>;
  const carried = await carryOver(c, merged, source, anonymousId, canonical, strategies);
  return carried ?? { merged, switched };
}

/**
 * What follows a hand-over from `from`: a first merge, or a retry of one whose profile or
 * experiment writes did not all land, folds the profiles and re-keys the experiments; then the
 * alias is recorded (a merged known person brings their own aliases along, for export and erasure).
 */
async function carryOver(
  c: AppContext,
  merged: MergeResult,
  from: string,
  anonymousId: string,
  canonical: string,
  strategies: Readonly<Record<string, MergeStrategy>>,
): Promise<Response | null> {
  if (merged.merged || merged.handedOver) {
    const folded = await storeCall(c, () =>
      Promise.all([
        mergeProfiles(c.env, from, canonical, strategies),
        // Exposures seen before login were recorded under the old id; conversions arrive under
        // the person's: re-keyed, the experiment counts them together, once.
        ...(merged.experiments ?? []).map((experiment) => rekeyVisitor(c.env, experiment, from, canonical)),
      ]),
    );
    if (folded instanceof Response) return folded;
  }
  const carried = from !== anonymousId ? await storeCall(c, () => readAliases(c.env, from)) : [];
  if (carried instanceof Response) return carried;
  // (A known source needs no alias key: its own object forwards to this person.)
  const aliased = await storeCall(c, () =>
    linkAlias(c.env, anonymousId, canonical, from !== anonymousId ? [from, ...carried] : []),
  );
  return aliased instanceof Response ? aliased : null;
}

function personWasErased(): Response {
  return jsonError("suppressed", "this person's data was erased; they cannot be re-identified");
}

export function registerIdentityRoutes(api: Hono<AppEnv>): void {
  api.post("/v1/identify", identify);

  documentRoute({
    method: "post",
    path: "/v1/identify",
    operationId: "identify",
    tag: "identity",
    server: true,
    summary: "Link the anonymous visitor to a known person (signed token from a browser, or the server key)",
    body: IdentifyRequestSchema,
    responses: {
      200: {
        description:
          "linked; history merged (idempotent: merging twice changes nothing). A browser carrying another known person's id is switched to this person (`switched: true`, new cookie), nothing merged",
      },
      403: { description: "a bare userId from a browser, or an invalid/expired token" },
      409: {
        description:
          "a server named an anonymousId linked to another known person, and the rules do not allow merging",
      },
      410: { description: "the person was erased" },
      429: RATE_LIMITED_DOC,
      503: storeUnavailableDoc("write"),
    },
  });
}

/** Every refusal of a token is `invalid_token` (the remedy is the same: a fresh one); the message says why. */
function tokenRefused(reason: IdentityTokenRefusal | "replayed", maxLifetimeSeconds: number): Response {
  const why = {
    malformed: "the identity token is not v1.<expiry>.<token id>.<userId>.<signature>",
    bad_signature: "the identity token's signature does not verify (or is not canonical base64url)",
    expired: "the identity token has expired",
    lifetime_too_long: `the identity token expires more than ${maxLifetimeSeconds} s from now (IDENTITY_TOKEN_MAX_TTL_SECONDS)`,
    replayed: "the identity token was already used; each token signs in once",
  } satisfies Record<IdentityTokenRefusal | "replayed", string>;
  return jsonError("invalid_token", why[reason]);
}

function alreadyLinked(): Response {
  return jsonError(
    "already_linked",
    "this visitor is linked to another known person; the rules do not allow merging them",
  );
}
