import * as z from "zod";
import { fromBase64Url, signValue, toBase64Url, verifySigned } from "../platform/crypto.ts";

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

/** The HMAC key is derived from ADMIN_TOKEN under its own label, so no other signed value passes as a preview. */
const previewSecret = (secret: string) => `northstar-preview:${secret}`;

export async function signPreview(secret: string, preview: Preview): Promise<string> {
  const payload = toBase64Url(encoder.encode(JSON.stringify(preview)));
  return `${payload}.${await signValue(previewSecret(secret), payload)}`;
}

/**
 * A valid, unexpired token's preview, or null for anything else (never an error to the visitor).
 * Verified by `verifySigned`, as cookies and identity tokens are: one canonical spelling per signature.
 */
export async function verifyPreview(secret: string, token: string, nowMs: number): Promise<Preview | null> {
  if (token.length > 4096 || token.split(".").length !== 2) return null;
  const payload = await verifySigned(previewSecret(secret), token);
  const bytes = payload === null ? null : fromBase64Url(payload);
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
