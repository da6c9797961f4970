import * as z from "zod";
import type { DecisionResult } from "../core/decide.ts";
import { drawnArm } from "../core/drawn-arm.ts";
import { log } from "../platform/log.ts";
import type { CompiledRules } from "../rules/index.ts";
import type { FirstPageRecord } from "../state/visitor-object.ts";

/**
 * A new visitor's first page touches no visitor object (docs/decisions.md, record 12): what it
 * assigned and showed rides in its beacon tag (`data-first`) and comes back with the beacon's first
 * call, which records it with the first page view. The browser is not trusted: each claimed
 * assignment must be the arm the visitor id draws under the active rules (`drawnArm`), and each
 * claimed exposure an experience of the active rules in that placement, shown in the drawn arm.
 * What does not check out is ignored, logged and counted.
 */

const Id = z.string().min(1).max(200);

/** What the beacon sends back (the tag's JSON, as a string): experiment → arm, and what each placement showed. */
const FirstPageClaimSchema = z.strictObject({
  assignments: z.record(Id, Id).default({}).describe("experiment → the arm the first page assigned"),
  shown: z
    .array(z.strictObject({ placement: Id, experience: Id }))
    .max(50)
    .default([])
    .describe("the experience each placement of the first page showed"),
});
export type FirstPageClaim = z.infer<typeof FirstPageClaimSchema>;

/** The claim as the beacon sends it: the tag's `data-first`, a JSON string, read by `parseFirstPage`. */
export const FirstPageFieldSchema = z
  .string()
  .max(16_000)
  .describe(
    "from the beacon, as its tag carried it: what a new visitor's first page assigned and showed (JSON); each claim is checked against the visitor id's deterministic buckets and the active rules",
  );

/** The claim, or null (logged and counted) when it is not one. */
export function parseFirstPage(field: string): FirstPageClaim | null {
  let json: unknown;
  try {
    json = JSON.parse(field);
  } catch {
    json = undefined;
  }
  const parsed = FirstPageClaimSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  refuse(["unreadable claim"]);
  return null;
}

function refuse(refusals: readonly string[]): void {
  refused += refusals.length;
  log("warn", "first_page_claim_refused", { refused: refusals });
}

/** At most this many assignments are read from one claim (a page has a handful). */
const MAX_ASSIGNMENTS = 50;

/** The claim for a first page's tag, or null when it assigned and showed nothing. */
export function firstPageClaim(result: Pick<DecisionResult, "exposures" | "assignments">): string | null {
  const shown = result.exposures.flatMap((exposure) =>
    exposure.placement === undefined
      ? []
      : [{ placement: exposure.placement, experience: exposure.experience }],
  );
  if (shown.length === 0 && Object.keys(result.assignments).length === 0) return null;
  return JSON.stringify({ assignments: result.assignments, shown });
}

let refused = 0;

/** How many claimed assignments and exposures this isolate ignored (for tests and diagnostics). */
export function refusedFirstPageClaims(): number {
  return refused;
}

/** The claim as far as it checks out against `visitorId` and the active rules. */
export function checkFirstPage(
  rules: CompiledRules,
  visitorId: string,
  claim: FirstPageClaim,
): FirstPageRecord | null {
  const assignments: Record<string, string> = {};
  const refusals: string[] = [];
  for (const [experimentId, arm] of Object.entries(claim.assignments).slice(0, MAX_ASSIGNMENTS)) {
    const experiment = Object.hasOwn(rules.experiments, experimentId)
      ? rules.experiments[experimentId]
      : undefined;
    if (experiment && drawnArm(experiment, visitorId) === arm) assignments[experimentId] = arm;
    else refusals.push(`assignment ${experimentId}`);
  }
  const exposures: FirstPageRecord["exposures"][number][] = [];
  for (const shown of claim.shown) {
    const placement = Object.hasOwn(rules.placements, shown.placement)
      ? rules.placements[shown.placement]
      : undefined;
    const experience = placement?.experiences.find((candidate) => candidate.id === shown.experience);
    const experiment = experience?.experiment ?? null;
    // An experiment's experience shows in the arm the visitor draws; a running one must be claimed.
    const variant = experiment
      ? experiment.status === "running"
        ? (assignments[experiment.id] ?? null)
        : (experiment.variants[0]?.id ?? null)
      : null;
    if (!experience || (experiment && (variant === null || variant === "holdout"))) {
      refusals.push(`exposure ${shown.placement}`);
      continue;
    }
    exposures.push({
      placement: shown.placement,
      experience: experience.id,
      experiment: experiment?.id ?? null,
      variant,
      capped: experience.caps.length > 0,
    });
  }
  if (refusals.length > 0) refuse(refusals);
  if (exposures.length === 0 && Object.keys(assignments).length === 0) return null;
  return { assignments, exposures, rulesVersion: rules.version };
}
