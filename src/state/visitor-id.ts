import type { Config } from "../edge/config.ts";
import { Lru } from "../edge/lru.ts";

/**
 * Visitor ids. An anonymous visitor gets a random 128-bit id in a cookie signed with HMAC-SHA256
 * (`<id>.<signature>`); a tampered or unsigned cookie is ignored, so the browser is simply a new
 * visitor. A known person's canonical id is derived from their user id, so every device and every
 * server sender reaches the same Durable Object without a lookup.
 */
const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

/**
 * A known person's canonical id (`u_` + 32 hex), or an anonymous id (16–64 base64url characters
 * that never start with `u_`, so the two can never be confused).
 */
export const VISITOR_ID_PATTERN = /^(?:u_[a-f0-9]{32}|(?!u_)[A-Za-z0-9_-]{16,64})$/;

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    keys.set(secret, key);
  }
  return key;
}

export function toBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromBase64Url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  try {
    return Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

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
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", encoder.encode(`northstar-user:${userId}`)),
  );
  return `u_${[...digest.slice(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export async function signValue(secret: string, value: string): Promise<string> {
  const sig = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(value));
  return toBase64Url(new Uint8Array(sig));
}

/** Constant-time check of `<value>.<signature>` (crypto.subtle.verify compares in constant time). */
export async function verifySigned(secret: string, signed: string): Promise<string | null> {
  const dot = signed.lastIndexOf(".");
  if (dot <= 0) return null;
  const value = signed.slice(0, dot);
  const sig = fromBase64Url(signed.slice(dot + 1));
  if (sig?.length !== 32) return null;
  const ok = await crypto.subtle.verify("HMAC", await hmacKey(secret), sig, encoder.encode(value));
  return ok ? value : null;
}

export function cookieName(config: Config): string {
  // `__Host-` binds the cookie to this exact host over HTTPS; it forbids a Domain attribute.
  return config.COOKIE_SECURE && !config.COOKIE_DOMAIN ? `__Host-${config.COOKIE_NAME}` : config.COOKIE_NAME;
}

export function readCookieValue(request: Request, name: string): string | null {
  const header = request.headers.get("cookie");
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** Cookies this isolate has verified: a returning visitor's page skips the HMAC. Keyed by the whole signed value. */
const verifiedCookies = new Lru<string>(10_000, 10 * 60_000);

export async function readVisitorCookie(request: Request, config: Config): Promise<string | null> {
  if (!config.COOKIE_SECRET) return null;
  const raw = readCookieValue(request, cookieName(config));
  if (!raw || raw.length > 200) return null;
  const now = Date.now();
  // The secret is part of the key, so rotating it invalidates what was verified with the old one.
  const key = `${config.COOKIE_SECRET}\u0000${raw}`;
  const known = verifiedCookies.get(key, now);
  if (known) return known;
  const id = await verifySigned(config.COOKIE_SECRET, raw);
  if (!id || !VISITOR_ID_PATTERN.test(id)) return null;
  verifiedCookies.set(key, id, now);
  return id;
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

/**
 * Identity tokens a site's backend signs to let a browser claim a user id:
 * `<userId>.<expiry epoch seconds>.<base64url HMAC-SHA256(IDENTITY_SECRET, "<userId>.<expiry>")>`.
 * A user id may itself contain dots (an email): the token is read from the right.
 *
 * @example
 * // on the site's backend, after login (Node: crypto.createHmac("sha256", secret).update(`${u}.${exp}`).digest("base64url"))
 * const token = await signIdentityToken(IDENTITY_SECRET, "customer-42", Math.floor(Date.now() / 1000) + 300);
 */
export async function signIdentityToken(
  secret: string,
  userId: string,
  expiresAtSeconds: number,
): Promise<string> {
  const value = `${userId}.${Math.floor(expiresAtSeconds)}`;
  return `${value}.${await signValue(secret, value)}`;
}

/** The user id a valid, unexpired token names; null for anything else (never throws). */
export async function verifyIdentityToken(
  secret: string,
  token: string,
  nowMs: number,
): Promise<string | null> {
  if (token.length > 1024) return null;
  const value = await verifySigned(secret, token);
  if (!value) return null;
  const dot = value.lastIndexOf(".");
  const userId = value.slice(0, dot);
  const expiry = value.slice(dot + 1);
  if (dot <= 0 || !/^\d{1,12}$/.test(expiry) || Number(expiry) * 1000 < nowMs) return null;
  return userId.length <= 256 ? userId : null;
}
