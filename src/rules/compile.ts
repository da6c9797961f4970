import type { RequestContext, VisitorEvent } from "../core/model.ts";
import {
  compileJsonTemplate,
  compileTemplate,
  type Template,
  type TemplateScope,
} from "../core/templates.ts";
import { type CompileEnv, compileCondition, type EvalScope, type Test } from "./conditions.ts";
import { parseDuration } from "./duration.ts";
import { type Condition, type Content, GLOBAL_HOLDOUT, type RulesDocument } from "./schema.ts";
import { eachCondition } from "./validate.ts";

/**
 * A validated rules document turned into closures and indexes, once per version: per-request work
 * does no parsing, no schema validation and no template parsing.
 */
export interface CompiledContent {
  readonly html: Template | null;
  readonly json: ((scope: TemplateScope) => unknown) | null;
  readonly redirect: Template | null;
  readonly attribute: Template | null;
}

export interface CompiledExperiment {
  readonly id: string;
  readonly seed: string;
  readonly variants: ReadonlyArray<{ readonly id: string; readonly weight: number }>;
  readonly holdout: number;
  readonly goal: string;
  readonly status: "running" | "paused" | "stopped";
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
}

export interface CompiledPlacement {
  readonly id: string;
  readonly selector: string | null;
  readonly action: RulesDocument["placements"][string]["action"];
  readonly attribute: string | null;
  readonly matchesPath: (path: string) => boolean;
  readonly group: string | null;
  readonly pick: "priority" | "score";
  readonly fallback: CompiledContent | null;
  readonly ttl: number;
  /** Candidates, highest priority first (declaration order among equals). */
  readonly experiences: readonly CompiledExperience[];
}

export interface CompiledRules {
  readonly version: string;
  readonly hash: string;
  readonly dimensions: Readonly<Record<string, { readonly halfLifeMs: number; readonly cap: number }>>;
  readonly halfLives: Readonly<Record<string, number>>;
  readonly placements: Readonly<Record<string, CompiledPlacement>>;
  /** Placement ids in declaration order. */
  readonly placementOrder: readonly string[];
  readonly experiments: Readonly<Record<string, CompiledExperiment>>;
  /** The program-wide control group (settings.globalHoldout), also listed in `experiments`. */
  readonly globalHoldout: CompiledExperiment | null;
  readonly segments: Readonly<Record<string, Test>>;
  readonly settings: RulesDocument["settings"];
  /** Event types recorded as conversions: purchase and every experiment's goal. */
  readonly conversionTypes: ReadonlySet<string>;
  /** The intent deltas an event contributes (used by the visitor's Durable Object at ingest). */
  scoreEvent(event: VisitorEvent): Array<{ dimension: string; delta: number }>;
  /**
   * How far back the rules read the event log (the longest countWithin window; unbounded when a
   * rule reads tags of all recent events; 0 when no rule reads events). The decision path asks the
   * visitor's object for no more than this.
   */
  readonly eventHorizonMs: number;
  /** Web placements that apply to a path, in declaration order. */
  placementsForPath(path: string): readonly string[];
  /** What a page at `path` rewrites, derived once per path and rules version (cached with it). */
  pageForPath(path: string): PageSlots;
}

/** Where a placement rewrites a page, known from the rules alone. */
export interface PageSlot {
  readonly selector: string;
  readonly action: Exclude<CompiledPlacement["action"], "redirect">;
  readonly attribute: string | null;
}

export interface PageSlots {
  readonly placements: readonly string[];
  /** The rewriting placements' slots (redirects have none). */
  readonly slots: readonly PageSlot[];
  /** A redirect placement applies: the response must wait for the decision. */
  readonly mayRedirect: boolean;
}

function compileContent(content: Content | null | undefined): CompiledContent | null {
  if (!content) return null;
  const text = (source: string | undefined, mode: "html" | "text") => {
    if (source === undefined) return null;
    const t = compileTemplate(source, mode);
    // Validation has already rejected templates that do not compile.
    return t.ok ? t.template : () => "";
  };
  let json: CompiledContent["json"] = null;
  if (content.json !== undefined) {
    const j = compileJsonTemplate(content.json);
    json = j.ok ? j.render : () => null;
  }
  return {
    html: text(content.html, "html"),
    json,
    redirect: text(content.redirect, "text"),
    attribute: text(content.attribute, "text"),
  };
}

/** "/", "/running" (exact), "/running/*" (the page and everything under it), "*" (all). */
export function pageMatcher(patterns: readonly string[]): (path: string) => boolean {
  if (patterns.includes("*")) return () => true;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of patterns) {
    if (p.endsWith("/*")) prefixes.push(p.slice(0, -2));
    else exact.add(p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p);
  }
  return (path) => {
    const normal = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
    if (exact.has(normal)) return true;
    for (const prefix of prefixes) if (normal === prefix || normal.startsWith(`${prefix}/`)) return true;
    return false;
  };
}

const EMPTY_CONTEXT: RequestContext = {
  channel: "web",
  url: null,
  path: "/",
  query: {},
  referrer: null,
  geo: { country: null, region: null, city: null, timezone: null },
  device: "unknown",
  locale: null,
  userAgent: null,
  custom: {},
};

export function compileRules(doc: RulesDocument, hash: string): CompiledRules {
  const conditionTests = new Map<string, Test>();
  const segmentTests = new Map<string, Test>();
  const env: CompileEnv = {
    ref: (id) => {
      let t = conditionTests.get(id);
      if (!t) {
        const cond = doc.conditions[id];
        t = cond ? compileCondition(cond, `conditions.${id}`, env) : () => false;
        conditionTests.set(id, t);
      }
      return t;
    },
    segment: (id) => {
      let t = segmentTests.get(id);
      if (!t) {
        const seg = doc.segments[id];
        const inner = seg ? compileCondition(seg.condition, `segments.${id}`, env) : () => false;
        // A segment is evaluated at most once per decision, however many experiences use it.
        t = (s, trace) => {
          const cached = s.segmentCache?.get(id);
          if (cached !== undefined && !trace) return cached;
          const result = inner(s, trace);
          if (!s.segmentCache) s.segmentCache = new Map();
          s.segmentCache.set(id, result);
          return result;
        };
        segmentTests.set(id, t);
      }
      return t;
    },
  };

  const dimensions: Record<string, { halfLifeMs: number; cap: number }> = {};
  const halfLives: Record<string, number> = {};
  for (const [id, d] of Object.entries(doc.dimensions)) {
    const halfLifeMs = parseDuration(d.halfLife) ?? Number.POSITIVE_INFINITY;
    dimensions[id] = { halfLifeMs, cap: d.cap };
    halfLives[id] = halfLifeMs;
  }

  const experiments: Record<string, CompiledExperiment> = {};
  for (const [id, e] of Object.entries(doc.experiments)) {
    experiments[id] = {
      id,
      seed: e.seed,
      variants: e.variants,
      holdout: e.holdout ?? doc.settings.holdout,
      goal: e.goal,
      status: e.status,
    };
  }

  // The program-wide control group is bucketed, stored, counted and reported like an experiment
  // with one arm ("personalized") and a holdout, under a reserved id.
  const global = doc.settings.globalHoldout;
  const globalHoldout: CompiledExperiment | null =
    global && global.fraction > 0
      ? {
          id: GLOBAL_HOLDOUT,
          seed: global.seed,
          variants: [{ id: "personalized", weight: 1 }],
          holdout: global.fraction,
          goal: global.goal,
          status: "running",
        }
      : null;
  if (globalHoldout) experiments[GLOBAL_HOLDOUT] = globalHoldout;

  const byPlacement = new Map<string, CompiledExperience[]>();
  doc.experiences.forEach((x, index) => {
    const variants: Record<string, CompiledContent> = {};
    for (const [v, content] of Object.entries(x.variants ?? {})) variants[v] = compileContent(content)!;
    const compiled: CompiledExperience = {
      id: x.id,
      index,
      placement: x.placement,
      priority: x.priority,
      scoreBy: x.scoreBy ?? null,
      audience: x.audience ? compileCondition(x.audience, `experiences[${index}].audience`, env) : null,
      caps: x.caps.map((c) => ({ max: c.max, perMs: parseDuration(c.per) ?? 0 })),
      suppress: x.suppressAfter.map((s) => ({ event: s.event, withinMs: parseDuration(s.within) ?? 0 })),
      experiment: x.experiment ? (experiments[x.experiment] ?? null) : null,
      content: compileContent(x.content),
      variants,
      channels: x.channels ? new Set(x.channels) : null,
    };
    const list = byPlacement.get(x.placement) ?? [];
    list.push(compiled);
    byPlacement.set(x.placement, list);
  });

  const placements: Record<string, CompiledPlacement> = {};
  for (const [id, p] of Object.entries(doc.placements)) {
    const experiences = (byPlacement.get(id) ?? []).sort(
      (a, b) => b.priority - a.priority || a.index - b.index,
    );
    placements[id] = {
      id,
      selector: p.selector ?? null,
      action: p.action,
      attribute: p.attribute ?? null,
      matchesPath: pageMatcher(p.pages),
      group: p.group ?? null,
      pick: p.pick,
      fallback: compileContent(p.default),
      ttl: p.ttl,
      experiences,
    };
  }
  const placementOrder = Object.keys(doc.placements);

  const segments: Record<string, Test> = {};
  for (const id of Object.keys(doc.segments)) segments[id] = env.segment(id);

  const signalsByType = new Map<string, Array<{ when: Test | null; add: Array<[string, number]> }>>();
  doc.signals.forEach((sig, i) => {
    const list = signalsByType.get(sig.event) ?? [];
    list.push({
      when: sig.when ? compileCondition(sig.when, `signals[${i}].when`, env) : null,
      add: Object.entries(sig.add),
    });
    signalsByType.set(sig.event, list);
  });

  let eventHorizonMs = 0;
  const sites: Condition[] = [
    ...Object.values(doc.conditions),
    ...Object.values(doc.segments).map((seg) => seg.condition),
    ...doc.experiences.flatMap((x) => (x.audience ? [x.audience] : [])),
  ];
  for (const site of sites) {
    eachCondition(site, "", (c) => {
      if ("countWithin" in c)
        eventHorizonMs = Math.max(eventHorizonMs, parseDuration(c.countWithin.window) ?? 0);
      if ("affinity" in c) eventHorizonMs = Number.POSITIVE_INFINITY;
    });
  }

  const pathCache = new Map<string, PageSlots>();
  return {
    version: doc.version,
    hash,
    dimensions,
    halfLives,
    placements,
    placementOrder,
    experiments,
    globalHoldout,
    segments,
    settings: doc.settings,
    eventHorizonMs,
    conversionTypes: new Set(["purchase", ...Object.values(experiments).map((e) => e.goal)]),
    scoreEvent(event) {
      const signals = signalsByType.get(event.type);
      if (!signals) return [];
      const context: RequestContext = {
        ...EMPTY_CONTEXT,
        channel: event.channel,
        url: typeof event.props.url === "string" ? event.props.url : null,
        path: typeof event.props.path === "string" ? event.props.path : "/",
      };
      const scope: EvalScope = {
        now: event.ts,
        traits: {},
        context,
        state: null,
        consent: {},
        assignments: {},
        halfLives,
        event,
      };
      const out: Array<{ dimension: string; delta: number }> = [];
      for (const s of signals) {
        if (s.when && !s.when(scope)) continue;
        for (const [dimension, delta] of s.add) out.push({ dimension, delta });
      }
      return out;
    },
    placementsForPath(path) {
      return this.pageForPath(path).placements;
    },
    pageForPath(path) {
      let hit = pathCache.get(path);
      if (!hit) {
        const ids = placementOrder.filter((id) => {
          const p = placements[id]!;
          return p.selector !== null && p.matchesPath(path);
        });
        const slots: PageSlot[] = [];
        let mayRedirect = false;
        for (const id of ids) {
          const { selector, action, attribute } = placements[id]!;
          if (action === "redirect") mayRedirect = true;
          else if (selector) slots.push({ selector, action, attribute });
        }
        hit = { placements: ids, slots, mayRedirect };
        // Bounded: a crawler walking a million URLs must not grow the isolate's memory.
        if (pathCache.size < 2000) pathCache.set(path, hit);
      }
      return hit;
    },
  };
}
