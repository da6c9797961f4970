import * as z from "zod";
import { fromBase64Url, toBase64Url } from "../state/visitor-id.ts";

/**
 * Preview/QA: an admin-signed token forces experiences or variants for the browser that carries it,
 * and asks for the explain panel. The token is `<payload>.<signature>`, both base64url, the
 * signature an HMAC-SHA256 over the payload with a key derived from ADMIN_TOKEN, so only an admin
 * can mint one and a tampered token is simply ignored.
 */
export const PreviewSchema = z.object({
  forced: z.record(z.string(), z.object({ experience: z.string(), variant: z.string().optional() })),
  explain: z.boolean().default(true),
  /** Expiry, epoch seconds. */
  exp: z.number().int(),
});
export type Preview = z.infer<typeof PreviewSchema>;

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

function key(secret: string): Promise<CryptoKey> {
  let k = keys.get(secret);
  if (!k) {
    k = crypto.subtle.importKey(
      "raw",
      encoder.encode(`northstar-preview:${secret}`),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    keys.set(secret, k);
  }
  return k;
}

export async function signPreview(secret: string, preview: Preview): Promise<string> {
  const payload = toBase64Url(encoder.encode(JSON.stringify(preview)));
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", await key(secret), encoder.encode(payload)));
  return `${payload}.${toBase64Url(sig)}`;
}

/** A valid, unexpired token's preview, or null for anything else (never an error to the visitor). */
export async function verifyPreview(secret: string, token: string, nowMs: number): Promise<Preview | null> {
  const [payload, sigText, extra] = token.split(".");
  if (!payload || !sigText || extra !== undefined || token.length > 4096) return null;
  const sig = fromBase64Url(sigText);
  if (!sig) return null;
  const ok = await crypto.subtle.verify("HMAC", await key(secret), sig, encoder.encode(payload));
  if (!ok) return null;
  const bytes = fromBase64Url(payload);
  if (!bytes) return null;
  try {
    const parsed = PreviewSchema.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
    if (!parsed.success || parsed.data.exp * 1000 < nowMs) return null;
    return parsed.data;
  } catch {
    return null;
  }
}

export const PREVIEW_PARAM = "ns_preview";
export const PREVIEW_COOKIE = "ns_preview";

/**
 * A path on this site, as a preview link may name: one leading `/`, then no `//`, no backslash,
 * no whitespace or control character. Browsers read `//host`, `/\host` and `/\t/host` as another
 * host (the URL parser drops tabs and newlines), so a link built from anything else could send an
 * admin elsewhere.
 */
export function isSitePath(path: string): boolean {
  return path.startsWith("/") && !path.includes("//") && !/[\\\s\p{Cc}]/u.test(path);
}
