import type { Consent, Traits } from "../core/model.ts";
import type { Env } from "../edge/env.ts";
import { Lru } from "../edge/lru.ts";

/**
 * Slow traits (CRM, warehouse) and consent, in the PROFILES KV namespace under the canonical id.
 * KV suits read-mostly data read everywhere; it allows about one write per second per key and is
 * eventually consistent, so nothing here is written per event.
 *
 *   profile:<canonicalId>   { "traits": {...}, "consent": {...}, "updatedAt": "…" }
 *   alias:<anonymousId>     "<canonicalId>"
 *   aliases:<canonicalId>   ["<anonymousId>", …]      (for export and erasure)
 *   suppressed:<id>         { "at": "…" }             (erased people: their events are refused)
 */
export interface StoredProfile {
  traits: Record<string, unknown>;
  consent: Record<string, boolean>;
  updatedAt: string;
}

export const profileKey = (id: string) => `profile:${id}`;
export const aliasKey = (id: string) => `alias:${id}`;
export const aliasesKey = (id: string) => `aliases:${id}`;
export const suppressedKey = (id: string) => `suppressed:${id}`;

type TraitsRead = { traits: Traits; consent: Consent } | null;

/**
 * Traits already read by this isolate, misses included: KV is eventually consistent (≈60 s) anyway,
 * so 15 s here changes nothing a person could notice and takes KV off most pages' critical path.
 */
const traitsCache = new Lru<TraitsRead>(10_000, 15_000);

/** The decision path's read: isolate cache, then KV cached at the edge for a minute; a miss is normal. */
export async function readTraits(env: Env, canonicalId: string): Promise<TraitsRead> {
  const now = Date.now();
  const cached = traitsCache.get(canonicalId, now);
  if (cached !== undefined) return cached;
  const stored = await env.PROFILES.get<StoredProfile>(profileKey(canonicalId), {
    type: "json",
    cacheTtl: 60,
  });
  const value = stored ? { traits: stored.traits ?? {}, consent: stored.consent ?? {} } : null;
  traitsCache.set(canonicalId, value, now);
  return value;
}

/** Writes made by this isolate are seen by its next read at once. */
export function forgetTraits(canonicalId: string): void {
  traitsCache.delete(canonicalId);
}

export async function readProfile(env: Env, canonicalId: string): Promise<StoredProfile | null> {
  return env.PROFILES.get<StoredProfile>(profileKey(canonicalId), "json");
}

export async function writeProfile(env: Env, canonicalId: string, profile: StoredProfile): Promise<void> {
  await env.PROFILES.put(profileKey(canonicalId), JSON.stringify(profile));
  forgetTraits(canonicalId);
}

export { FORBIDDEN_KEYS, findForbiddenKey, type MergeStrategy, mergeTraits } from "../core/traits.ts";
