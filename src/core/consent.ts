import type { Consent } from "./model.ts";

/**
 * How a purpose nobody answered for is read. `opt-out` (the default, as under CCPA): granted until
 * refused. `opt-in` (as under the GDPR and ePrivacy): refused until granted.
 */
export type ConsentMode = "opt-out" | "opt-in";

export const CONSENT_PURPOSES = ["personalization", "measurement"] as const;

/** Whether `purpose` may be used, from what the person answered and the deployment's mode. */
export function granted(held: Readonly<Consent>, purpose: string, mode: ConsentMode): boolean {
  const answer = Object.hasOwn(held, purpose) ? held[purpose] : undefined;
  return mode === "opt-in" ? answer === true : answer !== false;
}

/**
 * The consent a decision goes by: what was answered, with every unanswered purpose spelled out under
 * an opt-in mode (refused), so that the engine's checks read the same in both modes.
 */
export function effectiveConsent(held: Readonly<Consent>, mode: ConsentMode): Consent {
  if (mode === "opt-out") return { ...held };
  const out: Record<string, boolean> = { ...held };
  for (const purpose of CONSENT_PURPOSES) out[purpose] = granted(held, purpose, mode);
  return out;
}
