import type { Config } from "../platform/config.ts";
import { sha256Hex, signValue, toBase64Url, verifySigned } from "../platform/crypto.ts";
import { Lru } from "../platform/lru.ts";

/**
 * Visitor ids. An anonymous visitor gets a random 128-bit id in a cookie signed with HMAC-SHA256
 * (`<id>.<signature>`); a tampered or unsigned cookie is ignored, so the browser is simply a new
 * visitor. A known person's canonical id is derived from their user id, so every device and every
 * server sender reaches the same Durable Object without a lookup. Signing and base64url are the
 * shared plumbing of src/platform/crypto.ts.
 */

/**
 * A known person's canonical id (`u_` + 32 hex), or an anonymous id (16–64 base64url characters
 * that never start with `u_`, so the two can never be confused).
 */
export const VISITOR_ID_PATTERN = /^(?:u_[a-f0-9]{32}|(?!u_)[A-Za-z0-9_-]{16,64})$/;

/** A new anonymous visitor id: 128 random bits, base64url (22 characters), never starting with `u_`. */
export function issueVisitorId(): string {
  for (;;) {
    const id = toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
    // 1 in 4096 random ids would look like a known person's prefix: draw again.
    if (!id.startsWith("u_")) return id;
  }
}

/** The canonical id of a known person: `u_` + the first 128 bits of SHA-256(userId), hex. */
export async function canonicalForUser(userId: string): Promise<string> {
  return `u_${await sha256Hex(`northstar-user:${userId}`, 16)}`;
}

export function cookieName(config: Config): string {
  // `__Host-` binds the cookie to this exact host over HTTPS; it forbids a Domain attribute.
  return config.COOKIE_SECURE && !config.COOKIE_DOMAIN ? `__Host-${config.COOKIE_NAME}` : config.COOKIE_NAME;
}

export function readCookieValue(request: Request, name: string): string | null {
  return readCookieValues(request, name)[0] ?? null;
}

/** Every value of the cookies named `name`, in header order (a browser may send several). */
export function readCookieValues(request: Request, name: string): string[] {
  const header = request.headers.get("cookie");
  if (!header) return [];
  const values: string[] = [];
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) values.push(part.slice(eq + 1).trim());
  }
  return values;
}

/** Whether the request carries any visitor cookie at all, valid or not (no HMAC). */
export function sentVisitorCookie(request: Request, config: Config): boolean {
  return readCookieValues(request, cookieName(config)).length > 0;
}

/** Cookies this isolate has verified: a returning visitor's page skips the HMAC. Keyed by the whole signed value. */
const verifiedCookies = new Lru<string>(10_000, 10 * 60_000);

/**
 * Visitor cookies looked at per request. A browser can hold a few with one name (a host-only and a
 * domain cookie, another path); more than this is no browser, and each costs an HMAC.
 */
const MAX_VISITOR_COOKIES = 4;

/**
 * The visitor id of the first validly signed visitor cookie, in header order; null when none is.
 * An invalid cookie before a valid one (a stale domain cookie, a forged one) is skipped, never read.
 */
export async function readVisitorCookie(request: Request, config: Config): Promise<string | null> {
  if (!config.COOKIE_SECRET) return null;
  const now = Date.now();
  for (const raw of readCookieValues(request, cookieName(config)).slice(0, MAX_VISITOR_COOKIES)) {
    if (!raw || raw.length > 200) continue;
    // The secret is part of the key, so rotating it invalidates what was verified with the old one.
    const key = `${config.COOKIE_SECRET}\u0000${raw}`;
    const known = verifiedCookies.get(key, now);
    if (known) return known;
    const id = await verifySigned(config.COOKIE_SECRET, raw);
    if (!id || !VISITOR_ID_PATTERN.test(id)) continue;
    verifiedCookies.set(key, id, now);
    return id;
  }
  return null;
}

const MAX_AGE_SECONDS = 400 * 86400;

export async function visitorCookieHeader(id: string, config: Config): Promise<string> {
  const value = `${id}.${await signValue(config.COOKIE_SECRET!, id)}`;
  const parts = [
    `${cookieName(config)}=${value}`,
    "Path=/",
    `Max-Age=${MAX_AGE_SECONDS}`,
    "HttpOnly",
    "SameSite=Lax",
  ];
  if (config.COOKIE_SECURE) parts.push("Secure");
  if (config.COOKIE_DOMAIN) parts.push(`Domain=${config.COOKIE_DOMAIN}`);
  return parts.join("; ");
}

/** The first field of every identity token: the format's version, so a later format cannot be mistaken for it. */
const IDENTITY_TOKEN_VERSION = "v1";
/** A token id: 16–64 base64url characters (at least 96 random bits; 128 from `newIdentityTokenId`). */
const TOKEN_ID_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;
const MAX_USER_ID_LENGTH = 256;

/** What a valid identity token says: who signed in, under which one-time id, until when. */
export interface IdentityClaim {
  readonly userId: string;
  /** Unique per token: identify refuses a second use of it until the token expires. */
  readonly tokenId: string;
  readonly expiresAtMs: number;
}

/** Why a token is refused. A replay is recognised later, by the person's object (see `spendIdentityToken`). */
export type IdentityTokenRefusal = "malformed" | "bad_signature" | "expired" | "lifetime_too_long";

export type IdentityTokenCheck =
  | { readonly ok: true; readonly claim: IdentityClaim }
  | { readonly ok: false; readonly reason: IdentityTokenRefusal };

/** 128 random bits, base64url: a token id nobody else will draw. */
export function newIdentityTokenId(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Identity tokens a site's backend signs to let a browser claim a user id, once:
 * `v1.<expiry epoch seconds>.<token id>.<userId>.<base64url HMAC-SHA256(IDENTITY_SECRET, everything before it)>`.
 * The token id is fresh per token (a used one is refused until the token expires); the expiry is at
 * most IDENTITY_TOKEN_MAX_TTL_SECONDS (default 600) ahead; the user id comes last and may contain dots
 * (an email): the signature is after the last dot.
 *
 * @example
 * // on the site's backend, after login, in Node:
 * // const body = `v1.${Math.floor(Date.now() / 1000) + 300}.${crypto.randomBytes(16).toString("base64url")}.${userId}`;
 * // const token = `${body}.${crypto.createHmac("sha256", IDENTITY_SECRET).update(body).digest("base64url")}`;
 * const token = await signIdentityToken(IDENTITY_SECRET, "customer-42", Math.floor(Date.now() / 1000) + 300);
 */
export async function signIdentityToken(
  secret: string,
  userId: string,
  expiresAtSeconds: number,
  tokenId: string = newIdentityTokenId(),
): Promise<string> {
  const value = `${IDENTITY_TOKEN_VERSION}.${Math.floor(expiresAtSeconds)}.${tokenId}.${userId}`;
  return `${value}.${await signValue(secret, value)}`;
}

/**
 * A valid token's claim, or why it is refused (never throws). Refused: anything but the one format,
 * a signature that does not verify (or is not spelled canonically), an expiry passed, or one more
 * than `maxLifetimeSeconds` from now (a token must not be stretched into a long-lived credential).
 */
export async function verifyIdentityToken(
  secret: string,
  token: string,
  options: { readonly nowMs: number; readonly maxLifetimeSeconds: number },
): Promise<IdentityTokenCheck> {
  if (token.length > 1024) return { ok: false, reason: "malformed" };
  const [version, expiry, tokenId] = token.split(".", 3);
  const userIdStart = `${version}.${expiry}.${tokenId}.`.length;
  const sigStart = token.lastIndexOf(".") + 1;
  if (
    version !== IDENTITY_TOKEN_VERSION ||
    !expiry ||
    !/^[1-9]\d{0,11}$/.test(expiry) ||
    !tokenId ||
    !TOKEN_ID_PATTERN.test(tokenId) ||
    sigStart <= userIdStart + 1 ||
    sigStart - 1 - userIdStart > MAX_USER_ID_LENGTH
  ) {
    return { ok: false, reason: "malformed" };
  }
  if ((await verifySigned(secret, token)) === null) return { ok: false, reason: "bad_signature" };
  const expiresAtMs = Number(expiry) * 1000;
  if (expiresAtMs < options.nowMs) return { ok: false, reason: "expired" };
  if (expiresAtMs > options.nowMs + options.maxLifetimeSeconds * 1000) {
    return { ok: false, reason: "lifetime_too_long" };
  }
  return { ok: true, claim: { userId: token.slice(userIdStart, sigStart - 1), tokenId, expiresAtMs } };
}
