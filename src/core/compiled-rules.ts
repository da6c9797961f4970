import type { EventSides } from "./event-sides.ts";
import type { RankSpec } from "./ranking.ts";
import type { Test } from "./scope.ts";
import type { Template, TemplateScope } from "./templates.ts";

/**
 * The compiled rules as the engine reads them: closures and indexes built once per rules version
 * (by src/rules/compile.ts), so per-request work does no parsing. Declared here, beside the engine
 * that reads them, so the engine depends on no rules code; the rules layer builds a superset.
 */

/** What a placement does with its content on a web page. */
export const PLACEMENT_ACTIONS = [
  "replace_content",
  "replace_element",
  "before",
  "after",
  "prepend",
  "append",
  "remove",
  "set_attribute",
  "redirect",
] as const;
export type PlacementAction = (typeof PLACEMENT_ACTIONS)[number];

export interface CompiledContent {
  readonly html: Template | null;
  readonly json: ((scope: TemplateScope) => unknown) | null;
  readonly redirect: Template | null;
  readonly attribute: Template | null;
  /** A ranked list (content `items`): ranked per decision, rendered by `{{#each items}}`. */
  readonly items: RankSpec | null;
}

/** A conversion an experiment is measured on (rules: experiments.*.goals). */
export interface CompiledGoal {
  readonly id: string;
  /** The event type that reaches it. */
  readonly event: string;
  /** The props keys leading to the event's value (["value"] for props.value); null: no value. */
  readonly valuePath: readonly string[] | null;
  /** How long after the visitor's first exposure it counts; Infinity when the rules set no window. */
  readonly windowMs: number;
}

export interface CompiledExperiment {
  readonly id: string;
  readonly seed: string;
  readonly variants: ReadonlyArray<{ readonly id: string; readonly weight: number }>;
  readonly holdout: number;
  /** The primary goal's id (the rules' `goal`): goals[0]. */
  readonly goal: string;
  /** Every goal measured, the primary first. */
  readonly goals: readonly CompiledGoal[];
  readonly status: "running" | "paused" | "stopped";
  /** Its dates (startAt inclusive, endAt exclusive) in epoch ms; ±Infinity when it has none. */
  readonly startMs: number;
  readonly endMs: number;
  /** The layer it shares its visitors with (at most one experiment of a layer per visitor), or null. */
  readonly layer: CompiledLayer | null;
}

/**
 * An experiment layer (the rules' `layers`): which experiment owns which of its buckets. A visitor's
 * bucket in the layer names the one experiment of the layer they can be in, or none.
 */
export interface CompiledLayer {
  readonly id: string;
  readonly seed: string;
  /** Each experiment's buckets, `from` inclusive and `to` exclusive, out of LAYER_BUCKETS; no overlaps. */
  readonly ranges: ReadonlyArray<{ readonly experiment: string; readonly from: number; readonly to: number }>;
}

/**
 * When a dated experience may show: its own dates narrowed by its experiment's, with the words an
 * explanation gives when it may not ("starts …", "experiment x ended …"), made once at compile time.
 */
export interface CompiledSchedule {
  readonly startMs: number;
  readonly endMs: number;
  readonly notStarted: string;
  readonly ended: string;
}

export interface CompiledExperience {
  readonly id: string;
  /** Position in the document's `experiences` array, for explanations. */
  readonly index: number;
  readonly placement: string;
  readonly priority: number;
  readonly scoreBy: string | null;
  readonly audience: Test | null;
  readonly caps: ReadonlyArray<{ readonly max: number; readonly perMs: number }>;
  readonly suppress: ReadonlyArray<{ readonly event: string; readonly withinMs: number }>;
  readonly experiment: CompiledExperiment | null;
  readonly content: CompiledContent | null;
  readonly variants: Readonly<Record<string, CompiledContent>>;
  readonly channels: ReadonlySet<string> | null;
  /** Null: no dates, on the experience or its experiment (the common case, one check per request). */
  readonly schedule: CompiledSchedule | null;
}

export interface CompiledPlacement {
  readonly id: string;
  readonly selector: string | null;
  readonly action: PlacementAction;
  readonly attribute: string | null;
  readonly matchesPath: (path: string) => boolean;
  readonly group: string | null;
  readonly pick: "priority" | "score";
  readonly fallback: CompiledContent | null;
  readonly ttl: number;
  /** Candidates, highest priority first (declaration order among equals). */
  readonly experiences: readonly CompiledExperience[];
}

/** What decide() reads from the compiled rules (a structural subset of rules' CompiledRules). */
export interface DecisionRules {
  readonly halfLives: Readonly<Record<string, number>>;
  readonly placements: Readonly<Record<string, CompiledPlacement>>;
  /** Placement ids in declaration order. */
  readonly placementOrder: readonly string[];
  /** The program-wide control group (settings.globalHoldout), also listed in `experiments`. */
  readonly globalHoldout: CompiledExperiment | null;
  readonly segments: Readonly<Record<string, Test>>;
  readonly settings: { readonly redirectHosts?: readonly string[] | undefined };
  /** Which event types are visits and brand sends (settings.eventSides over the defaults). */
  readonly eventSides?: EventSides;
  /** How fast content affinity fades (settings.affinity.halfLife); absent: it does not. */
  readonly affinityHalfLifeMs?: number;
  /** Some template reads `affinity.top` or `visitor.lastCategory`: decisions work them out. */
  readonly templatesReadHistory?: boolean;
  /** Web placements that apply to a path, in declaration order. */
  placementsForPath(path: string): readonly string[];
}
