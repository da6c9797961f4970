import * as z from "zod";
import type { Consent, Traits } from "../core/model.ts";
import { sha256Hex } from "../platform/crypto.ts";
import type { Env } from "../platform/env.ts";
import { Lru } from "../platform/lru.ts";
import { parseStoredJson } from "./stored-value.ts";

/**
 * Slow traits (CRM, warehouse) and consent, in the PROFILES KV namespace under the canonical id.
 * KV suits read-mostly data read everywhere; it allows about one write per second per key and is
 * eventually consistent, so nothing here is written per event.
 *
 *   profile:<canonicalId>      { "traits": {...}, "consent": {...}, "updatedAt": "…" }
 *   alias:<anonymousId>        "<canonicalId>"
 *   aliases:<canonicalId>      ["<anonymousId>", …]      (for export and erasure)
 *   suppressed:<sha256(id)>    { "at": "…" }             (erased people: identify and imports refused)
 *
 * docs/storage.md documents each with an example.
 */
export const StoredProfileSchema = z.object({
  // Profiles written before a field existed read as empty, as they always did.
  traits: z.record(z.string(), z.unknown()).default({}),
  consent: z.record(z.string(), z.boolean()).default({}),
  updatedAt: z.string().default(""),
  /**
   * On an anonymous visitor stitched to a person: the person's canonical id. The page path reads
   * `profile:<cookie id>` anyway, so this pointer costs a second read only for the browsers a server
   * stitched (their cookie is still anonymous), and none for everyone else.
   */
  canonical: z.string().optional(),
  /** On a person: the profiles already folded into this one (identify is retried safely). */
  mergedFrom: z.array(z.string()).optional(),
});
export type StoredProfile = z.infer<typeof StoredProfileSchema>;

/** A profile nothing was written to yet: what a missing `profile:` key reads as. */
export function emptyProfile(): StoredProfile {
  return { traits: {}, consent: {}, updatedAt: "" };
}

/** `aliases:<canonicalId>`: the anonymous ids stitched into a person. */
export const AliasesSchema = z.array(z.string());
export type Aliases = z.infer<typeof AliasesSchema>;

export const profileKey = (id: string) => `profile:${id}`;
export const aliasKey = (id: string) => `alias:${id}`;
export const aliasesKey = (id: string) => `aliases:${id}`;

/** Erased people are remembered only by a hash of their id: the suppression list holds no ids. */
export async function suppressedKey(id: string): Promise<string> {
  return `suppressed:${await sha256Hex(`northstar-erased:${id}`)}`;
}

/** Whether any of these ids was erased (one KV read each, in parallel, edge-cached for a minute). */
export async function isSuppressed(env: Env, ...ids: string[]): Promise<boolean> {
  const found = await Promise.all(
    ids.map(async (id) => env.PROFILES.get(await suppressedKey(id), { cacheTtl: 60 })),
  );
  return found.some((marker) => marker !== null);
}

export type TraitsRead = { traits: Traits; consent: Consent; canonical?: string } | null;

/**
 * Traits already read by this isolate, misses included: KV is eventually consistent (≈60 s) anyway,
 * so 15 s here changes nothing a person could notice and takes KV off most pages' critical path.
 */
const traitsCache = new Lru<TraitsRead>(10_000, 15_000);

/**
 * The decision path's read: isolate cache, then KV cached at the edge for a minute; a miss is a
 * normal fast path (most visitors have no imported traits). With `deadlineMs`, a read slower than
 * that answers null at once (fail open: the page is decided without traits) and fills the cache
 * when it completes.
 *
 * @example const profile = await readTraits(env, visitorId, config.STORE_DEADLINE_MS);
 */
export async function readTraits(env: Env, canonicalId: string, deadlineMs?: number): Promise<TraitsRead> {
  const now = Date.now();
  const cached = traitsCache.get(canonicalId, now);
  if (cached !== undefined) return cached;
  const read = env.PROFILES.get(profileKey(canonicalId), { type: "text", cacheTtl: 60 }).then((text) => {
    const stored = parseStoredJson(StoredProfileSchema, text, "kv.profile");
    const value = stored
      ? {
          traits: stored.traits,
          consent: stored.consent,
          ...(stored.canonical === undefined ? {} : { canonical: stored.canonical }),
        }
      : null;
    traitsCache.set(canonicalId, value, Date.now());
    return value;
  });
  if (deadlineMs === undefined) return read;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), deadlineMs);
  });
  try {
    return await Promise.race([read.catch(() => null), late]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** Writes made by this isolate are seen by its next read at once. */
export function forgetTraits(canonicalId: string): void {
  traitsCache.delete(canonicalId);
}

/** The stored profile; null when there is none, or when what is stored is not a profile (logged). */
export async function readProfile(env: Env, canonicalId: string): Promise<StoredProfile | null> {
  const text = await env.PROFILES.get(profileKey(canonicalId), "text");
  return parseStoredJson(StoredProfileSchema, text, "kv.profile") ?? null;
}

export async function writeProfile(env: Env, canonicalId: string, profile: StoredProfile): Promise<void> {
  await env.PROFILES.put(profileKey(canonicalId), JSON.stringify(StoredProfileSchema.parse(profile)));
  forgetTraits(canonicalId);
}

/** The anonymous ids stitched into a person (`aliases:`); empty when none, or when unreadable (logged). */
export async function readAliases(env: Env, canonicalId: string): Promise<Aliases> {
  const text = await env.PROFILES.get(aliasesKey(canonicalId), "text");
  return parseStoredJson(AliasesSchema, text, "kv.aliases") ?? [];
}

/** Writes a person's alias list through the schema `readAliases` parses it with. */
export async function writeAliases(env: Env, canonicalId: string, aliases: Aliases): Promise<void> {
  await env.PROFILES.put(aliasesKey(canonicalId), JSON.stringify(AliasesSchema.parse(aliases)));
}

export { FORBIDDEN_KEYS, findForbiddenKey, type MergeStrategy, mergeTraits } from "../core/traits.ts";
