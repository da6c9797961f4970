/**
 * Deterministic experiment assignment. The spec (docs/bucketing.md, vectors in
 * test/core/vectors/bucketing.json) is small enough to reimplement in any language:
 *
 *   bucket(seed, id) = murmur3_x86_32(utf8(seed + ":" + id), 0) / 2^32          → [0, 1)
 *   held out         ⇔ bucket(seed + ":holdout", id) < holdout
 *   variant          = the first variant i with bucket(seed, id) < (w1 + … + wi) / (w1 + … + wn)
 *
 * The holdout draws from its own hash, so resizing the holdout never reshuffles who sees which variant.
 */

/** The version of docs/bucketing.md this file implements; vectors carry the same number. */
export const BUCKETING_SPEC_VERSION = "1.0";

const encoder = new TextEncoder();

/**
 * MurmurHash3 x86 32-bit (Austin Appleby, public domain) over bytes, as an unsigned 32-bit integer.
 *
 * @example murmur3(new TextEncoder().encode("hello")) // 0x248bfa47
 */
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

/**
 * Uniform in [0, 1), stable for a (seed, visitor) pair in every implementation. Strings are hashed
 * as UTF-8 (a lone surrogate becomes U+FFFD, as TextEncoder and most languages' encoders do).
 *
 * @example bucket("hero-2026-11", "visitor-1") // 0.12297834712080657
 */
export function bucket(seed: string, visitorId: string): number {
  return murmur3(utf8(`${seed}:${visitorId}`)) / 4294967296;
}

/**
 * The UTF-8 bytes of `key`, in a buffer reused between calls (encodeInto instead of encode: no
 * allocation per call, which was most of bucket()'s cost). Callers use the view before the next call.
 */
let scratch = new Uint8Array(256);
function utf8(key: string): Uint8Array {
  // A UTF-16 code unit never takes more than 3 UTF-8 bytes.
  if (key.length * 3 > scratch.length) scratch = new Uint8Array(key.length * 3);
  const { written } = encoder.encodeInto(key, scratch);
  return scratch.subarray(0, written);
}

export interface Assignment {
  /** The variant id, or null when held out or when no variant has a positive weight. */
  readonly variant: string | null;
  readonly heldOut: boolean;
  /** `bucket(seed, visitorId)`, the draw the variant was chosen with (also reported when held out). */
  readonly bucket: number;
}

/** A weight that can take part: finite and positive. Anything else (negative, NaN, ∞) counts as 0. */
const usable = (w: number): boolean => Number.isFinite(w) && w > 0;

/**
 * Assigns a visitor to a variant of an experiment, or to its holdout.
 *
 * @param variants in declared order; weights are any non-negative numbers, normalised by their sum
 * @param holdout the fraction of visitors held out, 0..1 (values outside are clamped; NaN is 0)
 * @example pickVariant("hero-2026-11", "visitor-1", [{ id: "control", weight: 50 }, { id: "bold", weight: 50 }], 0.1)
 *   // { variant: "control", heldOut: false, bucket: 0.12297834712080657 }
 */
export function pickVariant(
  seed: string,
  visitorId: string,
  variants: ReadonlyArray<{ readonly id: string; readonly weight: number }>,
  holdout: number,
): { variant: string | null; heldOut: boolean; bucket: number } {
  const b = bucket(seed, visitorId);
  // `holdout > 0` is false for NaN; a holdout ≥ 1 holds everyone out since buckets are < 1.
  if (holdout > 0 && bucket(`${seed}:holdout`, visitorId) < holdout)
    return { variant: null, heldOut: true, bucket: b };
  let total = 0;
  for (const v of variants) if (usable(v.weight)) total += v.weight;
  if (!(total > 0) || !Number.isFinite(total)) return { variant: null, heldOut: false, bucket: b };
  // Boundaries are (running sum of raw weights) / total: with whole-number weights every boundary is a
  // single correctly rounded division, so every IEEE-754 language draws exactly the same lines.
  let running = 0;
  let last: string | null = null;
  for (const v of variants) {
    if (!usable(v.weight)) continue;
    running += v.weight;
    last = v.id;
    if (b < running / total) return { variant: v.id, heldOut: false, bucket: b };
  }
  // Unreachable when the sum is exact (the last boundary is total / total = 1 > b); kept for safety.
  return { variant: last, heldOut: false, bucket: b };
}
