import type { Millis, Traits } from "../core/model.ts";
import { readConfig } from "../platform/config.ts";
import type { Env } from "../platform/env.ts";
import { pickTraits } from "../rules/journey-traits.ts";
import { activeRules } from "./rules-loader.ts";
import { visitorObject } from "./visitor-object.ts";

/**
 * After a person's traits were written to KV (identify's merge, a profile PUT or import, a journey's
 * setTrait): when the person has (or had, before the write) a trait some journey's trigger reads,
 * their visitor's object is given those traits and checks its triggers with them (docs/decisions.md,
 * record 19). Rules with no such trigger, or traits none of them reads, make no call at all:
 * importing a CRM file creates no object for people no journey can start on. A write that changed
 * nothing still calls: a retried write whose first call failed after KV took it must reach the
 * object, and the object's entries make the check idempotent. Answers the instances started.
 */
export async function traitsWritten(
  env: Env,
  canonicalId: string,
  before: Readonly<Traits>,
  after: Readonly<Traits>,
  now: Millis,
  ctx?: { waitUntil(promise: Promise<unknown>): void },
): Promise<string[]> {
  const names = (await activeRules(env, ctx))?.compiled.journeys.traits.names;
  if (!names || names.size === 0) return [];
  const picked = pickTraits(after, names);
  if (Object.keys(picked).length === 0 && Object.keys(pickTraits(before, names)).length === 0) return [];
  return visitorObject(env, canonicalId).journeyTraits(canonicalId, picked, {
    now,
    consentMode: readConfig(env).config.CONSENT_MODE,
  });
}
