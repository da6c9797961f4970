/**
 * The baseline DESIGN.md's decide() budget names: "a hand-written closure engine on the same
 * workload". Unlike bench/reference-decider.ts (a decider written for exactly the workload's rules,
 * with no rules engine), this is a small generic engine a good engineer would write by hand: it takes
 * the same rules document, compiles every condition once into a closure, and decides any visitor by
 * calling them. What it does, so its figures can be judged:
 * - Compiled once per rules document: each placement's experiences in priority order; each condition
 *   a closure (`all`/`any` short-circuit, a path read as its keys walked, an operator's comparison
 *   with its value bound, durations parsed); caps as (max, window) pairs; each template as literal
 *   parts and path reads with their `default`.
 * - Per call: the intent scores decayed to now (the result reports them, as decide()'s does); then
 *   each placement's experiences in priority order, stopping at the first whose audience holds and
 *   whose caps are not reached; a named segment evaluated once per call, when first read; a windowed
 *   count walks the log back from the newest event to the window's start, once per evaluation.
 * What it does not do: validate the document or the snapshot (it trusts both), explain, experiments,
 * layers, holdouts, redirects, lists, or any construct the workload does not use (it throws on one at
 * compile time, so it cannot silently decide differently). It knows nothing of the workload beyond
 * the document it is given.
 */
import { escapeHtml } from "../src/core/escape.ts";
import type { RequestContext, Traits, VisitorState } from "../src/core/model.ts";
import { decayedIntents, type ReferenceDecision, type ReferenceResult } from "./reference-decider.ts";

/** What a compiled condition reads. */
interface Scope {
  readonly state: VisitorState;
  readonly traits: Traits;
  readonly context: RequestContext;
  readonly now: number;
  readonly scores: Readonly<Record<string, number>>;
  /** Per named segment: whether the visitor is in it; absent, not worked out yet in this call. */
  readonly segments: Map<string, boolean>;
}

/** A named segment, evaluated once per call, when first read. */
function inSegment(scope: Scope, name: string, condition: Condition): boolean {
  let member = scope.segments.get(name);
  if (member === undefined) {
    member = condition(scope);
    scope.segments.set(name, member);
  }
  return member;
}

type Condition = (scope: Scope) => boolean;
type Read = (root: unknown) => unknown;

const UNITS: Record<string, number> = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

function duration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d|w)$/.exec(text);
  if (!match) throw new Error(`closure engine: duration ${text}`);
  return Number(match[1]) * UNITS[match[2]!]!;
}

/** A path's keys after its root, walked one by one. */
function reader(keys: readonly string[]): Read {
  return (root) => {
    let value = root;
    for (const key of keys) {
      if (value === null || typeof value !== "object") return undefined;
      value = (value as Record<string, unknown>)[key];
    }
    return value;
  };
}

/** An operator with its value bound: what the value read must satisfy. */
function comparison(op: string, expected: unknown): (actual: unknown) => boolean {
  switch (op) {
    case "eq":
      return (actual) => actual === expected;
    case "neq":
      return (actual) => actual !== expected;
    case "in": {
      const list = expected as readonly unknown[];
      return (actual) => list.includes(actual);
    }
    case "exists":
      return (actual) => actual !== undefined && actual !== null;
    case "gt":
    case "gte":
    case "lt":
    case "lte": {
      const bound = expected as number;
      const holds =
        op === "gt"
          ? (n: number) => n > bound
          : op === "gte"
            ? (n: number) => n >= bound
            : op === "lt"
              ? (n: number) => n < bound
              : (n: number) => n <= bound;
      return (actual) => typeof actual === "number" && Number.isFinite(actual) && holds(actual);
    }
    default:
      throw new Error(`closure engine: operator ${op}`);
  }
}

/** A path in the scope (`traits.*`, `context.*`) as a closure over the scope. */
function scopePath(path: string): (scope: Scope) => unknown {
  const [root, ...keys] = path.split(".");
  const read = reader(keys);
  if (root === "traits") return (scope) => read(scope.traits);
  if (root === "context") return (scope) => read(scope.context);
  throw new Error(`closure engine: path ${path}`);
}

/** Events of `type` in (now − windowMs, now], those `where` accepts: walked back from the newest. */
function countWithin(
  events: VisitorState["events"],
  now: number,
  type: string,
  windowMs: number,
  where: ((event: unknown) => boolean) | null,
): number {
  const since = now - windowMs;
  let n = 0;
  for (let k = events.length - 1; k >= 0; k--) {
    const event = events[k]!;
    if (event.ts <= since) break;
    if (event.ts <= now && event.type === type && (where === null || where(event))) n++;
  }
  return n;
}

type Json = Record<string, unknown>;

function compileCondition(spec: Json, segments: ReadonlyMap<string, Condition>): Condition {
  if (Array.isArray(spec.all)) {
    const parts = (spec.all as Json[]).map((part) => compileCondition(part, segments));
    return (scope) => parts.every((part) => part(scope));
  }
  if (Array.isArray(spec.any)) {
    const parts = (spec.any as Json[]).map((part) => compileCondition(part, segments));
    return (scope) => parts.some((part) => part(scope));
  }
  if (spec.intent) {
    const { dimension, above } = spec.intent as { dimension: string; above: number };
    return (scope) => (scope.scores[dimension] ?? 0) > above;
  }
  if (spec.countWithin) {
    const { event, window, where } = spec.countWithin as { event: string; window: string; where?: Json };
    const windowMs = duration(window);
    let filter: ((event: unknown) => boolean) | null = null;
    if (where) {
      const [root, ...keys] = (where.path as string).split(".");
      if (root !== "event") throw new Error(`closure engine: where ${String(where.path)}`);
      const read = reader(keys);
      const test = comparison(where.op as string, where.value);
      filter = (e) => test(read(e));
    }
    const test = comparison(spec.op as string, spec.value);
    return (scope) => test(countWithin(scope.state.events, scope.now, event, windowMs, filter));
  }
  if (spec.silence) {
    const { after, without, for: quiet } = spec.silence as { after: string; without: string[]; for: string };
    const quietMs = duration(quiet);
    return (scope) => {
      const at = scope.state.lastByType[after];
      if (at === undefined || scope.now - at < quietMs) return false;
      for (const type of without) {
        const later = scope.state.lastByType[type];
        if (later !== undefined && later >= at) return false;
      }
      return true;
    };
  }
  if (typeof spec.segment === "string") {
    const name = spec.segment;
    const segment = segments.get(name);
    if (!segment) throw new Error(`closure engine: segment ${name}`);
    return (scope) => inSegment(scope, name, segment);
  }
  if (typeof spec.path === "string" && typeof spec.op === "string") {
    const read = scopePath(spec.path);
    const test = comparison(spec.op, spec.value);
    return (scope) => test(read(scope));
  }
  throw new Error(`closure engine: condition ${JSON.stringify(spec).slice(0, 80)}`);
}

/** A template: literal parts and `{{ path | default: "x" }}` reads, the reads HTML-escaped. */
function compileTemplate(html: string): (scope: Scope) => string {
  const parts: Array<string | ((scope: Scope) => string)> = [];
  const pattern = /\{\{\s*([\w.]+)\s*(?:\|\s*default:\s*"([^"]*)"\s*)?\}\}/g;
  let at = 0;
  for (const match of html.matchAll(pattern)) {
    parts.push(html.slice(at, match.index));
    const read = scopePath(match[1]!);
    const fallback = escapeHtml(match[2] ?? "");
    parts.push((scope) => {
      const value = read(scope);
      return value === undefined || value === null || value === "" || value === false
        ? fallback
        : escapeHtml(String(value));
    });
    at = match.index + match[0].length;
  }
  parts.push(html.slice(at));
  return (scope) => {
    let out = "";
    for (const part of parts) out += typeof part === "string" ? part : part(scope);
    return out;
  };
}

interface Candidate {
  readonly id: string;
  readonly audience: Condition;
  readonly caps: ReadonlyArray<{ readonly max: number; readonly perMs: number }>;
  readonly render: (scope: Scope) => string;
}

/** The closure engine for one rules document: call it per visitor, with or without the segment list. */
export function closureEngine(doc: Json) {
  const segments = new Map<string, Condition>();
  const segmentSpecs = Object.entries((doc.segments ?? {}) as Record<string, { condition: Json }>);
  // Segments may read earlier ones: compiled in order, each sees those before it.
  for (const [name, { condition }] of segmentSpecs) segments.set(name, compileCondition(condition, segments));
  const halfLives = Object.entries((doc.dimensions ?? {}) as Record<string, { halfLife: string }>).map(
    ([dimension, setting]) => [dimension, duration(setting.halfLife)] as const,
  );
  const byPlacement = new Map<string, Array<Candidate & { readonly priority: number }>>();
  for (const placement of Object.keys(doc.placements as Json)) byPlacement.set(placement, []);
  for (const x of doc.experiences as Json[]) {
    const content = x.content as { html: string };
    byPlacement.get(x.placement as string)!.push({
      id: x.id as string,
      priority: (x.priority as number) ?? 0,
      audience: x.audience ? compileCondition(x.audience as Json, segments) : () => true,
      caps: ((x.caps ?? []) as Array<{ max: number; per: string }>).map((cap) => ({
        max: cap.max,
        perMs: duration(cap.per),
      })),
      render: compileTemplate(content.html),
    });
  }
  const placements = [...byPlacement].map(
    ([placement, candidates]) => [placement, candidates.sort((a, b) => b.priority - a.priority)] as const,
  );

  return (
    visitor: { readonly state: VisitorState; readonly traits: Traits; readonly context: RequestContext },
    listSegments: boolean,
    now: number,
  ): ReferenceResult => {
    const { state } = visitor;
    const { top, scores } = decayedIntents(state, halfLives, now);
    const scope: Scope = { ...visitor, now, scores, segments: new Map() };
    const decisions: ReferenceDecision[] = [];
    const exposures: Array<{ experience: string; placement: string }> = [];
    for (const [placement, candidates] of placements) {
      let decision: ReferenceDecision = { placement, experience: null, html: null };
      for (const candidate of candidates) {
        if (!candidate.audience(scope) || capReached(state, candidate, now)) continue;
        decision = { placement, experience: candidate.id, html: candidate.render(scope) };
        exposures.push({ experience: candidate.id, placement });
        break;
      }
      decisions.push(decision);
    }
    const listed = listSegments
      ? segmentSpecs.map(([name]) => name).filter((name) => inSegment(scope, name, segments.get(name)!))
      : null;
    return { decisions, segments: listed, intent: { top, scores }, exposures };
  };
}

function capReached(state: VisitorState, candidate: Candidate, now: number): boolean {
  if (candidate.caps.length === 0) return false;
  const times = state.exposures[candidate.id];
  if (!times) return false;
  for (const { max, perMs } of candidate.caps) {
    let shown = 0;
    for (const t of times) if (t > now - perMs) shown++;
    if (shown >= max) return true;
  }
  return false;
}
