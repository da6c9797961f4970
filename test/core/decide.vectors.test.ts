import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type DecisionInput, decide } from "../../src/core/index.ts";
import type { RequestContext, VisitorState } from "../../src/core/model.ts";
import { emptyState } from "../../src/core/visitor-state.ts";
import { compileRules, hashRules, parseRules } from "../../src/rules/index.ts";

/**
 * The engine's behaviour as language-neutral vectors (test/core/vectors/decide.json): named cases,
 * input → expected decision, against rules embedded in the file. This runner only fills the
 * defaults the file's description promises (a state lists only the fields it needs).
 */
interface Vector {
  name: string;
  input: Omit<DecisionInput, "state" | "context"> & {
    state: Partial<VisitorState> | null;
    context: Partial<RequestContext> & { geo?: Partial<RequestContext["geo"]> };
  };
  expect: Record<string, unknown> & { decisions?: Array<Record<string, unknown>>; segments?: string[] };
}

const file = JSON.parse(readFileSync(new URL("./vectors/decide.json", import.meta.url), "utf8")) as {
  specVersion: string;
  rules: unknown;
  cases: Vector[];
};

function stateOf(partial: Partial<VisitorState> | null, visitorId: string): VisitorState | null {
  return partial ? { ...emptyState(visitorId), ...partial } : null;
}

function contextOf(c: Vector["input"]["context"]): RequestContext {
  return {
    channel: "web",
    url: null,
    path: "/",
    query: {},
    referrer: null,
    device: "unknown",
    locale: null,
    userAgent: null,
    custom: {},
    ...c,
    geo: { country: null, region: null, city: null, timezone: null, ...c.geo },
  };
}

describe(`decide() vectors (spec ${file.specVersion})`, async () => {
  const parsed = parseRules(file.rules);
  if (!parsed.ok) throw new Error(`vector rules are invalid: ${JSON.stringify(parsed.errors)}`);
  const rules = compileRules(parsed.rules, await hashRules(parsed.rules));

  it("has a major spec version this runner reads", () => {
    expect(file.specVersion).toMatch(/^1\./);
  });

  it.each(file.cases.map((c) => [c.name, c] as const))("%s", (_name, v) => {
    const input: DecisionInput = {
      ...v.input,
      state: stateOf(v.input.state, v.input.visitorId),
      context: contextOf(v.input.context),
    };
    const result = decide(rules, input);
    const { decisions, segments, intent, ...exact } = v.expect;
    if (decisions) {
      expect(result.decisions.map((d) => d.placement)).toEqual(decisions.map((d) => d.placement));
      decisions.forEach((want, i) => {
        expect(result.decisions[i]).toMatchObject(want);
      });
    }
    if (segments) expect([...result.segments].sort()).toEqual([...segments].sort());
    if (intent) expect(result.intent).toMatchObject(intent as object);
    for (const [key, want] of Object.entries(exact)) {
      expect(result[key as keyof typeof result], key).toEqual(want);
    }
    // Deterministic: the same input gives the same output.
    expect(decide(rules, input)).toEqual(result);
  });
});
