import type { Millis } from "../core/model.ts";
import type { Env } from "../platform/env.ts";
import { emptyProfile, readProfile, writeProfile } from "../state/profiles.ts";
import { traitsWritten } from "../state/traits-written.ts";

/**
 * A journey's setTrait step: one trait written to the person's KV profile (where imported traits
 * live), read back by every decision after it. A rare write (once per entry and step), so KV's one
 * write a second per key is no limit here. Like any trait write, it lets the person's other journeys
 * whose triggers read that trait start (src/state/traits-written.ts).
 */
export async function setTrait(
  env: Env,
  visitorId: string,
  name: string,
  value: unknown,
  now: Millis,
): Promise<void> {
  const profile = (await readProfile(env, visitorId)) ?? emptyProfile();
  const traits = { ...profile.traits, [name]: value };
  // Already this value (a retried step): no KV write, but the person's object is told again.
  if (!Object.hasOwn(profile.traits, name) || profile.traits[name] !== value)
    await writeProfile(env, visitorId, { ...profile, traits, updatedAt: new Date(now).toISOString() });
  await traitsWritten(env, visitorId, profile.traits, traits, now);
}
