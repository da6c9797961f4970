/**
 * Deterministic experiment assignment. The spec (docs/bucketing.md, vectors in
 * test/core/vectors/bucketing.json) is small enough to reimplement in any language:
 *
 *   bucket(seed, id) = murmur3_x86_32(utf8(seed + ":" + id), 0) / 2^32          → [0, 1)
 *   held out         ⇔ bucket(seed + ":holdout", id) < holdout
 *   variant          = the first variant whose cumulative normalised weight exceeds bucket(seed, id)
 *
 * The holdout draws from its own hash, so resizing the holdout never reshuffles who sees which variant.
 */

const encoder = new TextEncoder();

/** MurmurHash3 x86 32-bit (Austin Appleby, public domain) over bytes. */
export function murmur3(bytes: Uint8Array, seed = 0): number {
  let h = seed >>> 0;
  const n = bytes.length;
  const blocks = n & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  // The 1–3 trailing bytes (the reference's switch fall-through, written without one).
  const tail = n & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= bytes[blocks + 2]! << 16;
    if (tail >= 2) k ^= bytes[blocks + 1]! << 8;
    k ^= bytes[blocks]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Uniform in [0, 1), stable for a (seed, visitor) pair in every implementation. */
export function bucket(seed: string, visitorId: string): number {
  return murmur3(encoder.encode(`${seed}:${visitorId}`)) / 4294967296;
}

export interface Assignment {
  readonly variant: string | null;
  readonly heldOut: boolean;
  readonly bucket: number;
}

export function pickVariant(
  seed: string,
  visitorId: string,
  variants: ReadonlyArray<{ readonly id: string; readonly weight: number }>,
  holdout: number,
): Assignment {
  const b = bucket(seed, visitorId);
  if (holdout > 0 && bucket(`${seed}:holdout`, visitorId) < holdout)
    return { variant: null, heldOut: true, bucket: b };
  let total = 0;
  for (const v of variants) total += Math.max(0, v.weight);
  if (total <= 0) return { variant: null, heldOut: false, bucket: b };
  let cumulative = 0;
  for (const v of variants) {
    if (v.weight <= 0) continue;
    cumulative += v.weight / total;
    if (b < cumulative) return { variant: v.id, heldOut: false, bucket: b };
  }
  // Floating-point sums can end a hair under 1: the last weighted variant takes the remainder.
  const last = [...variants].reverse().find((v) => v.weight > 0)!;
  return { variant: last.id, heldOut: false, bucket: b };
}
