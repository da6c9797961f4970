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

/** Objects built from parsed JSON onto prototype-free records, refusing keys that could pollute. */
export const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

export function findForbiddenKey(value: unknown, path = "", depth = 0): string | null {
  if (depth > 20 || value === null || typeof value !== "object") return null;
  for (const key of Object.keys(value)) {
    const here = path ? `${path}.${key}` : key;
    if (FORBIDDEN_KEYS.has(key)) return here;
    const inner = findForbiddenKey((value as Record<string, unknown>)[key], here, depth + 1);
    if (inner) return inner;
  }
  return null;
}

export type MergeStrategy = "mostRecent" | "oldest" | "add" | "firstNonEmpty";

const isEmpty = (v: unknown) => v === undefined || v === null || v === "";

/**
 * Merges traits of an anonymous profile into a known one, trait by trait, with the strategy the
 * rules name (Apache Unomi's merge strategies); unnamed traits keep the known profile's value.
 */
export function mergeTraits(
  known: Record<string, unknown>,
  incoming: Record<string, unknown>,
  strategies: Readonly<Record<string, MergeStrategy>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = Object.assign(Object.create(null), known);
  for (const [key, value] of Object.entries(incoming)) {
    if (FORBIDDEN_KEYS.has(key)) continue;
    const current = out[key];
    switch (strategies[key] ?? "firstNonEmpty") {
      case "mostRecent":
        if (!isEmpty(value)) out[key] = value;
        break;
      case "oldest":
        if (isEmpty(current)) out[key] = value;
        break;
      case "add":
        out[key] =
          typeof current === "number" && typeof value === "number"
            ? current + value
            : isEmpty(current)
              ? value
              : current;
        break;
      case "firstNonEmpty":
        if (isEmpty(current)) out[key] = value;
        break;
    }
  }
  return { ...out };
}
