import * as z from "zod";
import { fromBase64Url, signValue, toBase64Url, verifySigned } from "../platform/crypto.ts";

/**
 * The console's session: a cookie `ns_console=<payload>.<HMAC>` whose payload says when it expires
 * and carries the session's CSRF nonce. The key is derived from ADMIN_TOKEN, so rotating the token
 * closes every open console. Nothing is stored server-side: the signature is the session.
 */
export const SESSION_COOKIE = "ns_console";
/** How long a sign-in lasts. */
export const SESSION_SECONDS = 8 * 3600;

const SessionSchema = z.strictObject({
  /** Expiry, seconds since the epoch. */
  exp: z.number().int(),
  /** Random, per session: the CSRF token of every form is derived from it. */
  nonce: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
});
export type Session = z.infer<typeof SessionSchema>;

const sessionKey = (adminToken: string): string => `northstar-console-session:${adminToken}`;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function newSession(nowSeconds: number): Session {
  return {
    exp: nowSeconds + SESSION_SECONDS,
    nonce: toBase64Url(crypto.getRandomValues(new Uint8Array(16))),
  };
}

/** The cookie's value for a session. */
export async function sealSession(adminToken: string, session: Session): Promise<string> {
  const payload = toBase64Url(encoder.encode(JSON.stringify(session)));
  return `${payload}.${await signValue(sessionKey(adminToken), payload)}`;
}

/** The session a cookie value proves, or null: forged, malformed or expired are all "no session". */
export async function openSession(
  adminToken: string,
  cookieValue: string | undefined,
  nowSeconds: number,
): Promise<Session | null> {
  if (!cookieValue) return null;
  const payload = await verifySigned(sessionKey(adminToken), cookieValue);
  const bytes = payload === null ? null : fromBase64Url(payload);
  if (!bytes) return null;
  let decoded: unknown;
  try {
    decoded = JSON.parse(decoder.decode(bytes));
  } catch {
    return null;
  }
  const parsed = SessionSchema.safeParse(decoded);
  return parsed.success && parsed.data.exp > nowSeconds ? parsed.data : null;
}

/** The session's CSRF token: a MAC of its nonce, so the form's value is not the cookie's. */
export function csrfToken(adminToken: string, session: Session): Promise<string> {
  return signValue(sessionKey(adminToken), `csrf.${session.nonce}`);
}

/** `Set-Cookie` for a session, or (null) the one that ends it. Path-scoped to the console. */
export function sessionCookie(path: string, value: string | null, maxAge = SESSION_SECONDS): string {
  const attributes = `Path=${path}; HttpOnly; Secure; SameSite=Strict`;
  return value === null
    ? `${SESSION_COOKIE}=; Max-Age=0; ${attributes}`
    : `${SESSION_COOKIE}=${value}; Max-Age=${maxAge}; ${attributes}`;
}
