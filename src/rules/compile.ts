import type {
  CompiledContent,
  CompiledExperience,
  CompiledExperiment,
  CompiledGoal,
  CompiledPlacement,
  CompiledSchedule,
  DecisionRules,
} from "../core/compiled-rules.ts";
import { CountPlan } from "../core/event-counts.ts";
import { type EventSides, eventSides } from "../core/event-sides.ts";
import type { RequestContext, VisitorEvent } from "../core/model.ts";
import type { PageReads } from "../core/page-state.ts";
import type { CompiledListItem, ItemField, RankSpec } from "../core/ranking.ts";
import type { EvalScope, Test } from "../core/scope.ts";
import { compileJsonTemplate, compileTemplate } from "../core/templates.ts";
import { compileCondition, type NamedTests } from "./conditions.ts";
import { countedTypes } from "./counted-types.ts";
import { parseDuration } from "./duration.ts";
import { type CompiledJourneys, compileJourneys } from "./journeys.ts";
import { layerLayout } from "./layers.ts";
import {
  type Condition,
  type Content,
  GLOBAL_HOLDOUT,
  type Goal,
  type ListItem,
  type RulesDocument,
} from "./schema.ts";
import { eachCondition } from "./validate.ts";

/**
 * A validated rules document turned into closures and indexes, once per version: per-request work
 * does no parsing, no schema validation and no template parsing. The engine's part of the result is
 * declared in src/core/compiled-rules.ts; the rest serves ingest, the proxy and the admin routes.
 */
export interface CompiledRules extends DecisionRules {
  readonly version: string;
  readonly hash: string;
  readonly dimensions: Readonly<Record<string, { readonly halfLifeMs: number; readonly cap: number }>>;
  readonly experiments: Readonly<Record<string, CompiledExperiment>>;
  readonly settings: RulesDocument["settings"];
  /** The default visits, brand sends and responses with the document's additions. */
  readonly eventSides: EventSides;
  /** Event types recorded as conversions: purchase and every experiment's goal. */
  readonly conversionTypes: ReadonlySet<string>;
  /** The intent deltas an event contributes (used by the visitor's Durable Object at ingest). */
  scoreEvent(event: VisitorEvent): Array<{ dimension: string; delta: number }>;
  /**
   * How far back the rules read the event log (the longest countWithin or rate window; unbounded when a
   * rule reads tags of all recent events; 0 when no rule reads events). The decision path asks the
   * visitor's object for no more than this.
   */
  readonly eventHorizonMs: number;
  /**
   * The same, for deciding these placements alone (a page's): the longest window their experiences'
   * audiences read, through every named condition and segment they reference, unbounded when their
   * content reads the visitor's history. A page asks the visitor's object for no more (a preview,
   * which lists segments, asks for `eventHorizonMs`).
   */
  eventHorizonFor(placements: readonly string[]): number;
  /**
   * The event types whose hourly counters some condition can read (an unfiltered countWithin, both
   * sides of a rate, in any audience, segment, named condition, list or journey): the visitor's object
   * counts only these at ingest (docs/decisions.md, record 21).
   */
  readonly countedTypes: ReadonlySet<string>;
  /** What a page at `path` rewrites, derived once per path and rules version (cached with it). */
  pageForPath(path: string): PageSlots;
  /** Journeys: triggers, steps and the messaging limits they share. */
  readonly journeys: CompiledJourneys;
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
  /** How far back deciding these placements reads the log (`eventHorizonFor`), once per path. */
  readonly eventHorizonMs: number;
  /** What else of the visitor's state deciding them reads (core/page-state.ts), once per path. */
  readonly reads: PageReads;
}

/** Each list's items, compiled once and shared by every content that ranks it. */
type CompiledLists = ReadonlyMap<string, readonly CompiledListItem[]>;

function compileContent(content: Content | null | undefined, lists: CompiledLists): CompiledContent | null {
  if (!content) return null;
  const text = (source: string | undefined, mode: "html" | "text") => {
    if (source === undefined) return null;
    const compiled = compileTemplate(source, mode);
    // Validation has already rejected templates that do not compile.
    return compiled.ok ? compiled.template : () => "";
  };
  let json: CompiledContent["json"] = null;
  if (content.json !== undefined) {
    const compiled = compileJsonTemplate(content.json);
    json = compiled.ok ? compiled.render : () => null;
  }
  return {
    html: text(content.html, "html"),
    json,
    redirect: text(content.redirect, "text"),
    attribute: text(content.attribute, "text"),
    items: content.items ? rankSpec(content.items, lists) : null,
  };
}

function rankSpec(items: NonNullable<Content["items"]>, lists: CompiledLists): RankSpec {
  // Validation has already refused a list that does not exist.
  return { items: lists.get(items.from) ?? [], top: items.top, lastCategoryFirst: items.lastCategoryFirst };
}

/** The keys an item declares; every other key is a field it shows. */
const ITEM_DECLARED = new Set(["id", "category", "tags", "audience"]);

function compileLists(doc: RulesDocument, named: NamedTests): CompiledLists {
  const lists = new Map<string, CompiledListItem[]>();
  for (const [id, list] of Object.entries(doc.lists ?? {})) {
    lists.set(
      id,
      list.items.map((item: ListItem, i): CompiledListItem => {
        const fields: Record<string, ItemField> = {};
        for (const [key, value] of Object.entries(item))
          if (!ITEM_DECLARED.has(key)) fields[key] = value as ItemField;
        return {
          id: item.id,
          category: item.category ?? null,
          tags: [...new Set(item.tags)],
          audience: item.audience
            ? compileCondition(item.audience, `lists.${id}.items[${i}].audience`, named)
            : null,
          fields,
        };
      }),
    );
  }
  return lists;
}

/** "/", "/running" (exact), "/running/*" (the page and everything under it), "*" (all). */
export function pageMatcher(patterns: readonly string[]): (path: string) => boolean {
  if (patterns.includes("*")) return () => true;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const pattern of patterns) {
    if (pattern.endsWith("/*")) prefixes.push(pattern.slice(0, -2));
    else exact.add(pattern.length > 1 && pattern.endsWith("/") ? pattern.slice(0, -1) : pattern);
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
  const named = namedTests(doc);
  const { dimensions, halfLives } = compileDimensions(doc);
  const experiments = compileExperiments(doc);
  const globalHoldout = compileGlobalHoldout(doc);
  if (globalHoldout) experiments[GLOBAL_HOLDOUT] = globalHoldout;
  const lists = compileLists(doc, named);
  const placements = compilePlacements(doc, experiencesByPlacement(doc, experiments, named, lists), lists);
  const placementOrder = Object.keys(doc.placements);
  const segments: Record<string, Test> = {};
  for (const id of Object.keys(doc.segments)) segments[id] = named.segment(id);
  const needs = placementNeeds(doc);
  const horizonFor = needs.horizonFor;
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
    eventSides: eventSides(doc.settings.eventSides),
    // 0: affinity does not fade (no settings.affinity).
    affinityHalfLifeMs: doc.settings.affinity ? (parseDuration(doc.settings.affinity.halfLife) ?? 0) : 0,
    templatesReadHistory: templatesReadHistory(doc),
    eventHorizonMs: eventHorizon(doc),
    eventHorizonFor: horizonFor,
    countedTypes: countedTypes(doc),
    conversionTypes: new Set([
      "purchase",
      ...Object.values(experiments).flatMap((experiment) => experiment.goals.map((goal) => goal.event)),
    ]),
    scoreEvent: eventScorer(doc, halfLives, named),
    placementsForPath(path) {
      return this.pageForPath(path).placements;
    },
    pageForPath: pageSlotsFinder(placements, placementOrder, needs),
    journeys: compileJourneys(doc, named),
  };
}

/** Named conditions and segments, each compiled once, on first use. */
function namedTests(doc: RulesDocument): NamedTests {
  const conditionTests = new Map<string, Test>();
  const segmentTests = new Map<string, Test>();
  const named: NamedTests = {
    counts: new CountPlan(),
    condition: (id) => {
      let test = conditionTests.get(id);
      if (!test) {
        const condition = doc.conditions[id];
        test = condition ? compileCondition(condition, `conditions.${id}`, named) : () => false;
        conditionTests.set(id, test);
      }
      return test;
    },
    segment: (id) => {
      let test = segmentTests.get(id);
      if (!test) {
        const segment = doc.segments[id];
        test = memoizedSegment(
          id,
          segment ? compileCondition(segment.condition, `segments.${id}`, named) : () => false,
        );
        segmentTests.set(id, test);
      }
      return test;
    },
  };
  return named;
}

/**
 * A segment is evaluated at most once per decision, however many experiences use it. An explained
 * decision keeps what the segment's conditions told the trace, and tells it again to each later
 * reader, so the explanation is the same as if it were evaluated each time.
 */
function memoizedSegment(id: string, membership: Test): Test {
  return (scope, trace) => {
    scope.segmentCache ??= new Map();
    const cache = scope.segmentCache;
    const cached = cache.get(id);
    if (!trace) {
      if (cached !== undefined) return cached;
      const result = membership(scope);
      cache.set(id, result);
      return result;
    }
    scope.segmentTraces ??= new Map();
    const traces = scope.segmentTraces;
    const told = traces.get(id);
    if (cached !== undefined && told) {
      for (const [path, ok, why] of told) trace(path, ok, why);
      return cached;
    }
    const heard: Array<[string, boolean, string]> = [];
    const result = membership(scope, (path, ok, why) => {
      heard.push([path, ok, why]);
      trace(path, ok, why);
    });
    traces.set(id, heard);
    cache.set(id, result);
    return result;
  };
}

function compileDimensions(doc: RulesDocument): Pick<CompiledRules, "dimensions" | "halfLives"> {
  const dimensions: Record<string, { halfLifeMs: number; cap: number }> = {};
  const halfLives: Record<string, number> = {};
  for (const [id, dimension] of Object.entries(doc.dimensions)) {
    const halfLifeMs = parseDuration(dimension.halfLife) ?? Number.POSITIVE_INFINITY;
    dimensions[id] = { halfLifeMs, cap: dimension.cap };
    halfLives[id] = halfLifeMs;
  }
  return { dimensions, halfLives };
}

function compileExperiments(doc: RulesDocument): Record<string, CompiledExperiment> {
  const experiments: Record<string, CompiledExperiment> = {};
  const { layers } = layerLayout(doc);
  for (const [id, experiment] of Object.entries(doc.experiments)) {
    experiments[id] = {
      id,
      seed: experiment.seed,
      variants: experiment.variants,
      holdout: experiment.holdout ?? doc.settings.holdout,
      goal: experiment.goal,
      goals: compileGoals(experiment.goal, experiment.goals),
      status: experiment.status,
      ...campaignSpan(experiment),
      layer: experiment.layer ? (layers[experiment.layer.id] ?? null) : null,
    };
  }
  return experiments;
}

/**
 * The goals, the primary first: `goal` names one of `goals` by id, or else is an event type measured
 * with no value and no window (what an experiment meant before it could list goals).
 */
export function compileGoals(primary: string, goals: readonly Goal[] | undefined): CompiledGoal[] {
  const compiled = (goals ?? []).map(
    (goal): CompiledGoal => ({
      id: goal.id,
      event: goal.event,
      valuePath: goal.value ? goal.value.split(".").slice(1) : null,
      windowMs: goal.window
        ? (parseDuration(goal.window) ?? Number.POSITIVE_INFINITY)
        : Number.POSITIVE_INFINITY,
    }),
  );
  const named = compiled.find((goal) => goal.id === primary);
  const first = named ?? { id: primary, event: primary, valuePath: null, windowMs: Number.POSITIVE_INFINITY };
  return [first, ...compiled.filter((goal) => goal !== named)];
}

/**
 * The program-wide control group is bucketed, stored, counted and reported like an experiment
 * with one arm ("personalized") and a holdout, under a reserved id.
 */
function compileGlobalHoldout(doc: RulesDocument): CompiledExperiment | null {
  const global = doc.settings.globalHoldout;
  if (!global || !(global.fraction > 0)) return null;
  return {
    id: GLOBAL_HOLDOUT,
    seed: global.seed,
    variants: [{ id: "personalized", weight: 1 }],
    holdout: global.fraction,
    goal: global.goal,
    goals: compileGoals(global.goal, global.goals),
    status: "running",
    startMs: Number.NEGATIVE_INFINITY,
    endMs: Number.POSITIVE_INFINITY,
    layer: null,
  };
}

/** Each placement's candidates, in declaration order (compilePlacements ranks them). */
function experiencesByPlacement(
  doc: RulesDocument,
  experiments: Readonly<Record<string, CompiledExperiment>>,
  named: NamedTests,
  lists: CompiledLists,
): Map<string, CompiledExperience[]> {
  const byPlacement = new Map<string, CompiledExperience[]>();
  doc.experiences.forEach((experience, index) => {
    const variants: Record<string, CompiledContent> = {};
    for (const [variant, content] of Object.entries(experience.variants ?? {}))
      variants[variant] = compileContent(content, lists)!;
    const experiment = experience.experiment ? (experiments[experience.experiment] ?? null) : null;
    const compiled: CompiledExperience = {
      id: experience.id,
      index,
      placement: experience.placement,
      priority: experience.priority,
      scoreBy: experience.scoreBy ?? null,
      audience: experience.audience
        ? compileCondition(experience.audience, `experiences[${index}].audience`, named)
        : null,
      caps: experience.caps.map((cap) => ({ max: cap.max, perMs: parseDuration(cap.per) ?? 0 })),
      suppress: experience.suppressAfter.map((after) => ({
        event: after.event,
        withinMs: parseDuration(after.within) ?? 0,
      })),
      experiment,
      content: compileContent(experience.content, lists),
      variants,
      channels: experience.channels ? new Set(experience.channels) : null,
      schedule: scheduleOf(campaignSpan(experience), experiment),
    };
    const list = byPlacement.get(experience.placement) ?? [];
    list.push(compiled);
    byPlacement.set(experience.placement, list);
  });
  return byPlacement;
}

/** Validated dates (or none) as epoch ms: the decision compares numbers, never parses. */
function campaignSpan(dates: { startAt?: string | undefined; endAt?: string | undefined }): {
  startMs: number;
  endMs: number;
} {
  return {
    startMs: dates.startAt === undefined ? Number.NEGATIVE_INFINITY : Date.parse(dates.startAt),
    endMs: dates.endAt === undefined ? Number.POSITIVE_INFINITY : Date.parse(dates.endAt),
  };
}

/**
 * The experience shows only while both it and its experiment run: outside the experiment's dates
 * nobody is assigned, so nobody is counted.
 */
function scheduleOf(
  dates: { startMs: number; endMs: number },
  experiment: CompiledExperiment | null,
): CompiledSchedule | null {
  const experimentStarts = experiment !== null && experiment.startMs > dates.startMs;
  const experimentEnds = experiment !== null && experiment.endMs < dates.endMs;
  const startMs = experimentStarts ? experiment.startMs : dates.startMs;
  const endMs = experimentEnds ? experiment.endMs : dates.endMs;
  if (startMs === Number.NEGATIVE_INFINITY && endMs === Number.POSITIVE_INFINITY) return null;
  const whose = (byExperiment: boolean) => (byExperiment && experiment ? `experiment ${experiment.id} ` : "");
  return {
    startMs,
    endMs,
    notStarted: `${whose(experimentStarts)}starts ${instant(startMs)}`,
    ended: `${whose(experimentEnds)}ended ${instant(endMs)}`,
  };
}

function instant(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : "never";
}

function compilePlacements(
  doc: RulesDocument,
  byPlacement: Map<string, CompiledExperience[]>,
  lists: CompiledLists,
): Record<string, CompiledPlacement> {
  const placements: Record<string, CompiledPlacement> = {};
  for (const [id, placement] of Object.entries(doc.placements)) {
    const experiences = (byPlacement.get(id) ?? []).sort(
      (a, b) => b.priority - a.priority || a.index - b.index,
    );
    placements[id] = {
      id,
      selector: placement.selector ?? null,
      action: placement.action,
      attribute: placement.attribute ?? null,
      matchesPath: pageMatcher(placement.pages),
      group: placement.group ?? null,
      pick: placement.pick,
      fallback: compileContent(placement.default, lists),
      ttl: placement.ttl,
      experiences,
    };
  }
  return placements;
}

/** The intent deltas an event contributes: its type's signals whose `when` holds for it. */
function eventScorer(
  doc: RulesDocument,
  halfLives: Readonly<Record<string, number>>,
  named: NamedTests,
): CompiledRules["scoreEvent"] {
  const signalsByType = new Map<string, Array<{ when: Test | null; add: Array<[string, number]> }>>();
  doc.signals.forEach((signal, i) => {
    const list = signalsByType.get(signal.event) ?? [];
    list.push({
      when: signal.when ? compileCondition(signal.when, `signals[${i}].when`, named) : null,
      add: Object.entries(signal.add),
    });
    signalsByType.set(signal.event, list);
  });
  return (event) => {
    const signals = signalsByType.get(event.type);
    if (!signals) return [];
    const scope = eventScope(event, halfLives);
    const deltas: Array<{ dimension: string; delta: number }> = [];
    for (const signal of signals) {
      if (signal.when && !signal.when(scope)) continue;
      for (const [dimension, delta] of signal.add) deltas.push({ dimension, delta });
    }
    return deltas;
  };
}

/** What a signal's condition reads: the event, and the page it happened on; no visitor state. */
function eventScope(event: VisitorEvent, halfLives: Readonly<Record<string, number>>): EvalScope {
  const context: RequestContext = {
    ...EMPTY_CONTEXT,
    channel: event.channel,
    url: typeof event.props.url === "string" ? event.props.url : null,
    path: typeof event.props.path === "string" ? event.props.path : "/",
  };
  return { now: event.ts, traits: {}, context, state: null, consent: {}, assignments: {}, halfLives, event };
}

/**
 * How far back the rules read the event log: the longest countWithin or rate window, unbounded when
 * content affinity or the category browsed last is read (the affinity condition, a ranked list,
 * `{{ affinity.top }}`, `visitor.lastCategory`): they read the tags and categories of all recent events.
 */
function eventHorizon(doc: RulesDocument): number {
  let horizonMs = 0;
  const roots: Condition[] = [
    ...Object.values(doc.conditions),
    ...Object.values(doc.segments).map((segment) => segment.condition),
    ...doc.experiences.flatMap((experience) => (experience.audience ? [experience.audience] : [])),
    ...Object.values(doc.lists ?? {}).flatMap((list) => list.items.flatMap((item) => item.audience ?? [])),
  ];
  for (const root of roots) {
    eachCondition(root, "", (condition) => {
      horizonMs = Math.max(horizonMs, ownHorizon(condition));
    });
  }
  if (templatesReadHistory(doc) || contentsOf(doc).some((content) => content?.items))
    horizonMs = Number.POSITIVE_INFINITY;
  return horizonMs;
}

/** How far back one condition itself reads the log (not what it names): its window, or all of it. */
function ownHorizon(condition: Condition): number {
  if ("countWithin" in condition) return parseDuration(condition.countWithin.window) ?? 0;
  if ("rate" in condition) return parseDuration(condition.rate.within) ?? 0;
  if ("affinity" in condition || ("path" in condition && condition.path === LAST_CATEGORY))
    return Number.POSITIVE_INFINITY;
  return 0;
}

/**
 * Every condition `root` reaches: its own, and those of the named conditions and segments it names,
 * each name once (`seen`); an unknown name reaches nothing (validation refuses one anyway).
 */
function eachReached(
  doc: RulesDocument,
  root: Condition,
  seen: Set<string>,
  visit: (c: Condition) => void,
): void {
  eachCondition(root, "", (condition) => {
    visit(condition);
    const named =
      "ref" in condition
        ? { key: `condition:${condition.ref}`, condition: own(doc.conditions, condition.ref) }
        : "segment" in condition
          ? {
              key: `segment:${condition.segment}`,
              condition: own(doc.segments, condition.segment)?.condition,
            }
          : null;
    if (named && !seen.has(named.key)) {
      seen.add(named.key);
      if (named.condition) eachReached(doc, named.condition, seen, visit);
    }
  });
}

/** How far back one condition reads the log: its own windows and those of what it names, once each. */
function conditionHorizon(doc: RulesDocument, root: Condition): number {
  let horizonMs = 0;
  eachReached(doc, root, new Set(), (condition) => {
    horizonMs = Math.max(horizonMs, ownHorizon(condition));
  });
  return horizonMs;
}

/** The longest windowed count (`countWithin`, `rate`) a condition, or one it names, reads (0: none). */
function countsWindow(doc: RulesDocument, root: Condition): number {
  let windowMs = 0;
  eachReached(doc, root, new Set(), (condition) => {
    if ("countWithin" in condition || "rate" in condition)
      windowMs = Math.max(windowMs, ownHorizon(condition));
  });
  return windowMs;
}

/** Whether a condition, or one it names, reads the visitor's channel engagement. */
function readsEngagement(doc: RulesDocument, root: Condition): boolean {
  let reads = false;
  eachReached(doc, root, new Set(), (condition) => {
    if ("preferredChannel" in condition) reads = true;
  });
  return reads;
}

function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** What deciding a set of placements reads of a visitor's state: the log's horizon and the rest. */
interface PlacementNeeds {
  /** How far back they read the log; a placement it does not know gets the document's horizon. */
  horizonFor(placements: readonly string[]): number;
  /** What else of the state they read (core/page-state.ts). */
  readsFor(placements: readonly string[]): PageReads;
}

/**
 * What deciding each placement reads, worked out once per rules version. The log: `eventHorizon` per
 * placement (its experiences' audiences and whatever they name; unbounded when its default or an
 * experience's content reads the history or ranks a list), never more than the document's. The
 * longest windowed count its audiences (or a ranked list's items) read, for the hourly counters.
 * The exposures of its capped experiences (their caps count them). Channel engagement when an
 * audience, or an item of a list its content ranks, reads `preferredChannel`. A placement it does
 * not know reads every count, every experience's exposures and the engagement.
 */
function placementNeeds(doc: RulesDocument): PlacementNeeds {
  const whole = eventHorizon(doc);
  const horizons = new Map<string, number>();
  const windows = new Map<string, number>();
  const capped = new Map<string, string[]>();
  const engagement = new Set<string>();
  const ranks = (content: Content | null | undefined) => Boolean(content?.items);
  const readsHistory = (content: Content | null | undefined) =>
    ranks(content) || contentReadsHistory(content);
  const itemAudiences = Object.values(doc.lists ?? {}).flatMap((list) =>
    list.items.flatMap((item) => (item.audience ? [item.audience] : [])),
  );
  const itemsReadEngagement = itemAudiences.some((audience) => readsEngagement(doc, audience));
  const itemsWindow = Math.max(0, ...itemAudiences.map((audience) => countsWindow(doc, audience)));
  let everyWindow = itemsWindow;
  for (const experience of doc.experiences)
    if (experience.audience) everyWindow = Math.max(everyWindow, countsWindow(doc, experience.audience));
  for (const [id, placement] of Object.entries(doc.placements)) {
    let horizonMs = readsHistory(placement.default) ? Number.POSITIVE_INFINITY : 0;
    let windowMs = ranks(placement.default) ? itemsWindow : 0;
    let engaged = itemsReadEngagement && ranks(placement.default);
    const caps: string[] = [];
    for (const experience of doc.experiences) {
      if (experience.placement !== id) continue;
      if (experience.audience) {
        horizonMs = Math.max(horizonMs, conditionHorizon(doc, experience.audience));
        windowMs = Math.max(windowMs, countsWindow(doc, experience.audience));
        if (readsEngagement(doc, experience.audience)) engaged = true;
      }
      const contents = [experience.content, ...Object.values(experience.variants ?? {})];
      if (contents.some(readsHistory)) horizonMs = Number.POSITIVE_INFINITY;
      if (contents.some(ranks)) {
        windowMs = Math.max(windowMs, itemsWindow);
        if (itemsReadEngagement) engaged = true;
      }
      if (experience.caps.length > 0) caps.push(experience.id);
    }
    // Never more than the document's own horizon, which every read so far has been held to.
    horizons.set(id, Math.min(horizonMs, whole));
    windows.set(id, windowMs);
    capped.set(id, caps);
    if (engaged) engagement.add(id);
  }
  const everyCapped = doc.experiences.filter((e) => e.caps.length > 0).map((e) => e.id);
  return {
    horizonFor: (placements) => {
      let horizonMs = 0;
      for (const id of placements) horizonMs = Math.max(horizonMs, horizons.get(id) ?? whole);
      return horizonMs;
    },
    readsFor: (placements) => {
      const exposures = new Set<string>();
      let engaged = false;
      let countsWithinMs = 0;
      for (const id of placements) {
        countsWithinMs = Math.max(countsWithinMs, windows.get(id) ?? everyWindow);
        for (const experience of capped.get(id) ?? everyCapped) exposures.add(experience);
        if (engagement.has(id) || !horizons.has(id)) engaged = true;
      }
      return { countsWithinMs, exposures: [...exposures], engagement: engaged };
    },
  };
}

const LAST_CATEGORY = "visitor.lastCategory";
/** Template paths read from the event log (a template path is words and dots, so a text search finds it). */
const HISTORY_PATHS = /\baffinity\.top\b|\bvisitor\.lastCategory\b/;

/** Every content of the document: placement defaults, experiences' content and variants. */
function contentsOf(doc: RulesDocument): Array<Content | null | undefined> {
  return [
    ...Object.values(doc.placements).map((placement) => placement.default),
    ...doc.experiences.flatMap((experience) => [
      experience.content,
      ...Object.values(experience.variants ?? {}),
    ]),
  ];
}

/** Some template reads `affinity.top` or `visitor.lastCategory` (decide() works them out only then). */
function templatesReadHistory(doc: RulesDocument): boolean {
  return contentsOf(doc).some(contentReadsHistory);
}

function contentReadsHistory(content: Content | null | undefined): boolean {
  if (!content) return false;
  const texts = [content.html, content.redirect, content.attribute, JSON.stringify(content.json ?? null)];
  return texts.some((text) => text !== undefined && HISTORY_PATHS.test(text));
}

/** What a page at a path rewrites, cached per path for the life of this rules version. */
function pageSlotsFinder(
  placements: Readonly<Record<string, CompiledPlacement>>,
  placementOrder: readonly string[],
  needs: PlacementNeeds,
): (path: string) => PageSlots {
  const pathCache = new Map<string, PageSlots>();
  return (path) => {
    let page = pathCache.get(path);
    if (!page) {
      page = pageSlots(placements, placementOrder, path, needs);
      // Bounded: a crawler walking a million URLs must not grow the isolate's memory.
      if (pathCache.size < 2000) pathCache.set(path, page);
    }
    return page;
  };
}

function pageSlots(
  placements: Readonly<Record<string, CompiledPlacement>>,
  placementOrder: readonly string[],
  path: string,
  needs: PlacementNeeds,
): PageSlots {
  const ids = placementOrder.filter((id) => {
    const placement = placements[id]!;
    return placement.selector !== null && placement.matchesPath(path);
  });
  const slots: PageSlot[] = [];
  let mayRedirect = false;
  for (const id of ids) {
    const { selector, action, attribute } = placements[id]!;
    if (action === "redirect") mayRedirect = true;
    else if (selector) slots.push({ selector, action, attribute });
  }
  return {
    placements: ids,
    slots,
    mayRedirect,
    eventHorizonMs: needs.horizonFor(ids),
    reads: needs.readsFor(ids),
  };
}
