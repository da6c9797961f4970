/**
 * The Web Crypto plumbing every layer shares: SHA-256 as hex, HMAC-SHA256 signing of `<value>.<signature>`
 * strings (visitor cookies, identity tokens, preview tokens), and canonical base64url. Written once, so
 * a cookie and a preview token cannot disagree on what a valid signature looks like.
 */
const encoder = new TextEncoder();

/** The hex SHA-256 of `text`, or of its first `bytes` bytes: ids derived from other ids without a lookup. */
export async function sha256Hex(text: string, bytes?: number): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  return [...digest.subarray(0, bytes)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Imported keys per secret: importKey costs more than the HMAC itself, and secrets are few. */
const hmacKeys = new Map<string, Promise<CryptoKey>>();
/** Secrets come from the configuration (a handful, a rotation adds one): past this, start over. */
const MAX_HMAC_KEYS = 16;

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = hmacKeys.get(secret);
  if (!key) {
    if (hmacKeys.size >= MAX_HMAC_KEYS) hmacKeys.clear();
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    hmacKeys.set(secret, key);
  }
  return key;
}

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * Base64url without padding, three bytes to four characters by table: it runs on pages (a new
 * visitor's or a crawler's drawn id, a cookie's signature), where `btoa` plus three replaces cost more.
 */
export function toBase64Url(bytes: Uint8Array): string {
  const a = BASE64URL;
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += a[n >>> 18]! + a[(n >>> 12) & 63]! + a[(n >>> 6) & 63]! + a[n & 63]!;
  }
  if (i < bytes.length) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8);
    out += a[n >>> 18]! + a[(n >>> 12) & 63]!;
    if (i + 1 < bytes.length) out += a[(n >>> 6) & 63]!;
  }
  return out;
}

/**
 * The bytes of canonical base64url text, or null: only the URL alphabet, no padding, and the unused
 * bits of the last character zero. So each byte string has exactly one spelling, and a signature or
 * an id that verifies cannot be re-spelled into another string that verifies too.
 */
export function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
  // atob ignores the unused bits; the one canonical spelling is the one that encodes back to itself.
  return toBase64Url(bytes) === text ? bytes : null;
}

/** The base64url HMAC-SHA256 of `value` under `secret`. */
export async function signValue(secret: string, value: string): Promise<string> {
  const signature = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(value));
  return toBase64Url(new Uint8Array(signature));
}

/** Constant-time check of `<value>.<signature>` (crypto.subtle.verify compares in constant time). */
export async function verifySigned(secret: string, signed: string): Promise<string | null> {
  const dot = signed.lastIndexOf(".");
  if (dot <= 0) return null;
  const value = signed.slice(0, dot);
  const signature = fromBase64Url(signed.slice(dot + 1));
  if (signature?.length !== 32) return null;
  const ok = await crypto.subtle.verify("HMAC", await hmacKey(secret), signature, encoder.encode(value));
  return ok ? value : null;
}
