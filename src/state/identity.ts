import { bearerIs } from "../platform/bearer.ts";
import { readConfig } from "../platform/config.ts";
import type { Env } from "../platform/env.ts";
import { Lru } from "../platform/lru.ts";
import { aliasKey } from "./profiles.ts";
import { canonicalForUser, readVisitorCookie, VISITOR_ID_PATTERN } from "./visitor-id.ts";

/**
 * Who a request speaks for. A server sender (Authorization: Bearer SERVER_API_KEY) may name any
 * visitor or user; a browser speaks only for the visitor in its own signed cookie.
 */
export type Caller = { kind: "server" } | { kind: "browser"; visitorId: string | null };

export async function callerOf(request: Request, env: Env): Promise<Caller> {
  const { config } = readConfig(env);
  if (await bearerIs(request, config.SERVER_API_KEY)) return { kind: "server" };
  return { kind: "browser", visitorId: await readVisitorCookie(request, config) };
}

/** Canonical ids this isolate resolved: a returning visitor's page skips the alias read. */
const canonicalOf = new Lru<string>(10_000, 30_000);

/** The canonical id of a visitor id: itself, or the known profile it was stitched into. */
export async function resolveCanonical(env: Env, visitorId: string): Promise<string> {
  if (visitorId.startsWith("u_")) return visitorId;
  const cached = canonicalOf.get(visitorId, Date.now());
  if (cached !== undefined) return cached;
  // Edge-cached: a stale alias costs one hop, never a wrong answer (the anonymous visitor's
  // object forwards to the person it was merged into).
  const alias = await env.PROFILES.get(aliasKey(visitorId), { cacheTtl: 60 });
  const canonical = alias && VISITOR_ID_PATTERN.test(alias) ? alias : visitorId;
  canonicalOf.set(visitorId, canonical, Date.now());
  return canonical;
}

export function forgetAlias(visitorId: string): void {
  canonicalOf.delete(visitorId);
}

/** Known people's canonical ids start with `u_`; anonymous visitors' never do. */
export function isKnownId(canonicalId: string): boolean {
  return canonicalId.startsWith("u_");
}

/** An admin route's `:id`: a canonical or anonymous visitor id, or `user:<userId>`; null if malformed. */
export async function canonicalFromParam(env: Env, raw: string): Promise<string | null> {
  if (raw.startsWith("user:")) {
    const userId = raw.slice(5);
    return userId.length > 0 && userId.length <= 256 ? canonicalForUser(userId) : null;
  }
  return VISITOR_ID_PATTERN.test(raw) ? resolveCanonical(env, raw) : null;
}

/** The id a server call names: `userId` (hashed to the canonical id) or a visitor id. */
export async function subjectOf(
  body: { visitorId?: string | undefined; userId?: string | undefined },
  env: Env,
) {
  if (body.userId) return canonicalForUser(body.userId);
  if (body.visitorId) return resolveCanonical(env, body.visitorId);
  return null;
}
