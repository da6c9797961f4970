import { type ConsentMode, granted } from "./consent.ts";
import type { Consent } from "./model.ts";

/**
 * The privacy gate: what may be done with a person's data, decided in one place. Every path that
 * reads or writes a person asks it — the page, decide, events, identify, experiments, the export —
 * with what it knows, so no path can forget a promise another one keeps.
 */
export interface PrivacyFacts {
  /** The deployment's CONSENT_MODE. */
  readonly mode: ConsentMode;
  /** The request carries `Sec-GPC: 1` and the deployment honours it (RESPECT_GPC). */
  readonly gpc: boolean;
  /** What the person answered, or null when it could not be read (a store failed): then nothing is assumed. */
  readonly consent: Readonly<Consent> | null;
  /** The person was erased: a tombstone, suppressed for good. */
  readonly erased: boolean;
}

/** Why the gate refused; null when it allowed everything. */
export type PrivacyBlock = "erased" | "gpc" | "consent" | null;

export interface PrivacyVerdict {
  /** Behaviour may be stored (events, page views, the state built from them). */
  readonly keep: boolean;
  /** Stored behaviour and traits may be used to decide what the person sees. */
  readonly personalize: boolean;
  /** The person may be counted: experiment exposures and conversions. */
  readonly measure: boolean;
  /** Identities may be linked (an anonymous visitor stitched to a person). */
  readonly link: boolean;
  /** A persistent visitor cookie may be set: always under opt-out, after a grant under opt-in. */
  readonly remember: boolean;
  readonly blocked: PrivacyBlock;
}

/** Every use of the person's data refused (the cookie is decided apart). */
const NO_USE = {
  keep: false,
  personalize: false,
  measure: false,
  link: false,
} as const;

export function privacyVerdict(facts: PrivacyFacts): PrivacyVerdict {
  const answered = facts.consent ?? {};
  // The cookie only remembers who the browser is; under opt-in even that waits for a grant.
  const remember = facts.mode === "opt-out" || granted(answered, "personalization", facts.mode);
  if (facts.erased) return { ...NO_USE, remember: false, blocked: "erased" };
  // Global Privacy Control is an opt-out of everything that follows a person, whatever the mode.
  if (facts.gpc) return { ...NO_USE, remember, blocked: "gpc" };
  // Unread consent is unknown: decide as for someone who said no rather than assume a yes.
  if (facts.consent === null) return { ...NO_USE, remember, blocked: "consent" };
  const personalize = granted(answered, "personalization", facts.mode);
  const measure = granted(answered, "measurement", facts.mode);
  return {
    keep: personalize,
    personalize,
    measure,
    link: personalize,
    remember,
    blocked: personalize && measure ? null : "consent",
  };
}

/** `Sec-GPC: 1` on the request, when the deployment honours Global Privacy Control. */
export function gpcSignal(headers: Headers, respectGpc: boolean): boolean {
  return respectGpc && headers.get("sec-gpc") === "1";
}

/**
 * The consent the engine decides with: what was answered (rules may read any purpose), with the
 * two purposes the engine enforces set to what the gate allows.
 */
export function decisionConsent(facts: PrivacyFacts, verdict: PrivacyVerdict): Consent {
  return { ...facts.consent, personalization: verdict.personalize, measurement: verdict.measure };
}

/**
 * Whether a journey may message this person through `channel`: their data may be used at all (the
 * gate's `personalize`), the `marketing` purpose is granted under the deployment's mode, and they did
 * not refuse that channel (`marketing_sms: false`). A per-channel answer only narrows: it never grants
 * what `marketing` refuses.
 */
export function marketingAllowed(facts: PrivacyFacts, channel?: string): boolean {
  const verdict = privacyVerdict(facts);
  if (!verdict.personalize || facts.consent === null) return false;
  if (!granted(facts.consent, "marketing", facts.mode)) return false;
  return channel === undefined || facts.consent[`marketing_${channel}`] !== false;
}
