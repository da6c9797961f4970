import type { Millis } from "../core/model.ts";
import type { Env } from "../platform/env.ts";
import { emptyProfile, readProfile, writeProfile } from "../state/profiles.ts";

/**
 * A journey's setTrait step: one trait written to the person's KV profile (where imported traits
 * live), read back by every decision after it. A rare write (once per entry and step), so KV's one
 * write a second per key is no limit here.
 */
export async function setTrait(
  env: Env,
  visitorId: string,
  name: string,
  value: unknown,
  now: Millis,
): Promise<void> {
  const profile = (await readProfile(env, visitorId)) ?? emptyProfile();
  if (Object.hasOwn(profile.traits, name) && profile.traits[name] === value) return;
  await writeProfile(env, visitorId, {
    ...profile,
    traits: { ...profile.traits, [name]: value },
    updatedAt: new Date(now).toISOString(),
  });
}
