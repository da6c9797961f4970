import { decide } from "../../src/core/decide.ts";
import type { RequestContext, VisitorEvent } from "../../src/core/model.ts";
import {
  applyEvent,
  emptyState,
  type MutableVisitorState,
  type Scoring,
} from "../../src/core/visitor-state.ts";
import { type CompiledRules, compileRules, hashRules, parseRules } from "../../src/rules/index.ts";

export const NOW = Date.parse("2026-11-22T12:00:00Z");
export const MIN = 60e3;
export const HOUR = 3600e3;
export const DAY = 86400e3;

export function context(over: Partial<RequestContext> = {}): RequestContext {
  return {
    channel: "web",
    url: "https://shop.example/",
    path: "/",
    query: {},
    referrer: null,
    geo: { country: null, region: null, city: null, timezone: null },
    device: "desktop",
    locale: null,
    userAgent: null,
    custom: {},
    ...over,
  };
}

let n = 0;
export function event(
  type: string,
  ago: number,
  props: Record<string, unknown> = {},
  channel = "web",
): VisitorEvent {
  n += 1;
  return { id: `e${n}`, type, ts: NOW - ago, channel, props };
}

export function stateOf(
  events: VisitorEvent[],
  scoring: Scoring | null = null,
  id = "visitor-1",
): MutableVisitorState {
  const s = emptyState(id);
  for (const e of [...events].sort((a, b) => a.ts - b.ts)) applyEvent(s, e, scoring);
  return s;
}

export async function compile(doc: unknown): Promise<CompiledRules> {
  const parsed = parseRules(doc);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return compileRules(parsed.rules, await hashRules(parsed.rules));
}

/**
 * Whether the experience `x` of a one-experience rules document wins its slot for `input` (an anonymous
 * visitor with no state at NOW unless `input` says otherwise): conditions tested as an author writes them.
 */
export async function experienceWins(
  doc: unknown,
  input: Partial<Parameters<typeof decide>[1]> = {},
): Promise<boolean> {
  const rules = await compile(doc);
  const result = decide(rules, {
    visitorId: "v1",
    now: NOW,
    traits: {},
    state: null,
    context: context(),
    consent: {},
    ...input,
  });
  return result.decisions[0]?.experience === "x";
}
