/**
 * Reads a request body with a byte limit counted on the bytes actually received: the
 * Content-Length header is a claim, not a measurement (Hono's bodyLimit trusted it: CVE-2025-59139).
 */
export type BodyRead = { ok: true; text: string } | { ok: false; status: 413; limit: number };

export async function readLimited(request: Request, limit: number): Promise<BodyRead> {
  if (!request.body) return { ok: true, text: "" };
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      return { ok: false, status: 413, limit };
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  return { ok: true, text: new TextDecoder().decode(all) };
}

/** Depth of nested arrays and objects, stopping as soon as it passes `max`. */
export function depthExceeds(value: unknown, max: number, depth = 0): boolean {
  if (value === null || typeof value !== "object") return false;
  if (depth >= max) return true;
  for (const v of Object.values(value)) if (depthExceeds(v, max, depth + 1)) return true;
  return false;
}
