import fc from "fast-check";
import { describe, expect, it } from "vitest";
import demoJson from "../../rules/northstar.rules.json" with { type: "json" };
import { type DecisionInput, decide } from "../../src/core/index.ts";
import type { VisitorEvent } from "../../src/core/model.ts";
import { applyEvent, emptyState } from "../../src/core/visitor-state.ts";
import { type Condition, compileRules, parseRules } from "../../src/rules/index.ts";
import { context, NOW } from "./helpers.ts";

/**
 * Properties, not examples: any document is either valid or rejected with errors that name a JSON
 * path, and decide() never throws — whatever the document (once valid), profile, state or context.
 */
const demo = JSON.parse(JSON.stringify(demoJson)) as Record<string, unknown>;

/** Every path to a value inside a JSON document, so a mutation can land anywhere. */
function pathsOf(value: unknown, at: Array<string | number> = [], out: Array<Array<string | number>> = []) {
  out.push(at);
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) pathsOf(v, [...at, i], out);
  } else if (value && typeof value === "object")
    for (const [k, v] of Object.entries(value)) pathsOf(v, [...at, k], out);
  return out;
}
const TOP_LEVEL = ["(document)", ...Object.keys(demo), "conditions", "segments", "experiments"];
const demoPaths = pathsOf(demo).filter((p) => p.length > 0);

function setAt(doc: unknown, path: Array<string | number>, value: unknown): unknown {
  const copy = structuredClone(doc) as Record<string | number, unknown>;
  let node = copy;
  for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
  node[path.at(-1)!] = value;
  return copy;
}

const anything = fc.jsonValue({ maxDepth: 3 });

const eventArb: fc.Arbitrary<VisitorEvent> = fc.record({
  id: fc.string({ maxLength: 6 }),
  type: fc.constantFrom("page_view", "product_view", "add_to_cart", "purchase", "email_click", "sms_click"),
  ts: fc.integer({ min: NOW - 400 * 86400e3, max: NOW + 60e3 }),
  channel: fc.constantFrom("web", "app", "email", "sms"),
  props: fc.record(
    {
      path: fc.constantFrom("/", "/running", "/hiking/alpine-boot", "/cart"),
      category: fc.constantFrom("running", "hiking", 3, null),
      tags: fc.oneof(fc.array(fc.constantFrom("running", "trail", "sale"), { maxLength: 3 }), anything),
      value: fc.oneof(fc.integer(), fc.string()),
    },
    { requiredKeys: [] },
  ),
});

const PATHS = [
  "traits.tier",
  "traits.lifetimeValue",
  "traits.appVersion",
  "context.path",
  "context.query.utm_source",
  "context.geo.country",
  "context.device",
  "visitor.sessionCount",
  "intent.running",
];
const OPS = [
  "eq",
  "neq",
  "lt",
  "gte",
  "in",
  "contains",
  "startsWith",
  "exists",
  "between",
  "semverGte",
] as const;

/** Valid condition trees (refs only to what the generated document defines). */
const conditionArb: fc.Arbitrary<Condition> = fc.letrec<{ cond: Condition }>((tie) => ({
  cond: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc
      .tuple(fc.constantFrom(...OPS), fc.constantFrom(...PATHS), fc.integer({ min: -5, max: 50 }))
      .map(([op, path, n]): Condition => {
        const value =
          op === "in" || op === "between"
            ? [n, n + 10]
            : op === "semverGte"
              ? `${Math.abs(n)}.1.0` // a version has no sign: "-1.1.0" is refused by validation
              : op === "startsWith" || op === "contains"
                ? "/r"
                : op === "exists"
                  ? n > 0
                  : n;
        return { op: op as "eq", path, value };
      }),
    fc.record({
      countWithin: fc.record({
        event: fc.constantFrom("page_view", "add_to_cart"),
        window: fc.constantFrom("30m", "7d"),
      }),
      op: fc.constantFrom("gte", "lt"),
      value: fc.nat(5),
    }) as fc.Arbitrary<Condition>,
    fc.constant<Condition>({ silence: { after: "add_to_cart", without: ["purchase"], for: "2m" } }),
    fc.constant<Condition>({ inactive: { for: "30d" } }),
    fc.constant<Condition>({ intent: { top: "running" } }),
    fc.constant<Condition>({ affinity: { tag: "running" } }),
    fc.constant<Condition>({ preferredChannel: "sms" }),
    fc.constant<Condition>({ consent: "personalization" }),
    fc.constant<Condition>({ experiment: "exp", variant: "b" }),
    fc.constant<Condition>({ timeOfDay: { from: "22:00", to: "06:00" } }),
    fc.constant<Condition>({ dayOfWeek: [0, 6] }),
    fc.constant<Condition>({ segment: "base" }),
    fc.array(tie("cond"), { minLength: 1, maxLength: 3 }).map((all) => ({ all })),
    fc.array(tie("cond"), { minLength: 1, maxLength: 3 }).map((any) => ({ any })),
    tie("cond").map((not) => ({ not })),
  ),
})).cond;

function docWith(audiences: Condition[]) {
  return {
    version: "prop",
    dimensions: { running: { halfLife: "7d" } },
    signals: [{ id: "s", event: "product_view", add: { running: 3 } }],
    segments: { base: { condition: { op: "exists", path: "traits.tier" } } },
    placements: {
      a: { selector: "#a", pages: ["*"], group: "g" },
      b: { selector: ".b", pages: ["/running/*"], group: "g", pick: "score" },
      c: {},
    },
    experiences: audiences.map((audience, i) => ({
      id: `x${i}`,
      placement: ["a", "b", "c"][i % 3],
      priority: -i,
      audience,
      scoreBy: "running",
      caps: [{ max: 2, per: "1h" }],
      content: { html: '<p>{{ traits.tier | default: "x" }}</p>', json: { t: "{{ context.path }}" } },
      ...(i % 4 === 0
        ? { experiment: "exp", variants: { a: { html: "A" }, b: { html: "B" } }, content: undefined }
        : {}),
    })),
    experiments: {
      exp: {
        seed: "s",
        variants: [
          { id: "a", weight: 50 },
          { id: "b", weight: 50 },
        ],
        holdout: 0.2,
        goal: "purchase",
      },
    },
  };
}

describe("rules documents", () => {
  it("any mutation of the demo rules either validates or fails with path-named errors", () => {
    fc.assert(
      fc.property(fc.constantFrom(...demoPaths), anything, (path, value) => {
        const r = parseRules(setAt(demo, path, value));
        if (r.ok) {
          const rules = compileRules(r.rules, "h");
          expect(() =>
            decide(rules, {
              visitorId: "v",
              now: NOW,
              traits: {},
              state: null,
              context: context(),
              consent: {},
            }),
          ).not.toThrow();
          return;
        }
        expect(r.errors.length).toBeGreaterThan(0);
        for (const e of r.errors) {
          // The path starts at a top-level key of the document (or names the document itself).
          expect(TOP_LEVEL).toContain(e.path.split(/[.[]/)[0]);
          expect(e.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 400 },
    );
    // 400 validations of the whole demo document: seconds on a busy 2-core machine, not a speed check.
  }, 60_000);

  it("any JSON value at all is rejected by path, never thrown on", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (doc) => {
        const r = parseRules(doc);
        if (!r.ok) for (const e of r.errors) expect(e.path.length > 0 && e.message.length > 0).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe("decide() never throws", () => {
  it("for generated audiences over generated histories, and is deterministic", () => {
    fc.assert(
      fc.property(
        fc.array(conditionArb, { minLength: 1, maxLength: 6 }),
        fc.array(eventArb, { maxLength: 30 }),
        fc.record(
          { tier: fc.constantFrom("gold", 3, null), lifetimeValue: fc.integer(), appVersion: fc.string() },
          { requiredKeys: [] },
        ),
        fc.constantFrom("/", "/running/x", "/cart"),
        fc.string({ maxLength: 8 }),
        fc.boolean(),
        (audiences, events, traits, path, visitorId, explain) => {
          const parsed = parseRules(docWith(audiences));
          if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
          const rules = compileRules(parsed.rules, "h");
          const state = emptyState(visitorId);
          for (const e of [...events].sort((a, b) => a.ts - b.ts)) applyEvent(state, e, rules);
          const input: DecisionInput = {
            visitorId,
            now: NOW,
            traits,
            state,
            context: context({
              path,
              geo: { country: "FR", region: null, city: null, timezone: "Asia/Tokyo" },
            }),
            consent: { personalization: true },
            explain,
          };
          const a = decide(rules, input);
          expect(decide(rules, input)).toEqual(a);
          if (explain) for (const d of a.decisions) expect(a.explanation?.[d.placement]).toBeDefined();
          else expect(a.explanation).toBeNull();
        },
      ),
      { numRuns: 200 },
    );
  });

  it("whatever shape every input field has", () => {
    const parsed = parseRules(demo);
    if (!parsed.ok) throw new Error("demo rules should parse");
    const rules = compileRules(parsed.rules, "h");
    fc.assert(
      fc.property(
        fc.record({
          visitorId: anything,
          now: fc.oneof(fc.integer(), fc.double(), anything),
          traits: anything,
          state: fc.oneof(
            anything,
            fc.record({
              events: fc.array(fc.oneof(eventArb, anything) as fc.Arbitrary<unknown>),
              intent: anything,
              lastByType: anything,
              exposures: anything,
              engagement: anything,
              engagementHours: anything,
              assignments: anything,
            }),
          ),
          context: fc.oneof(anything, fc.constant(context())),
          consent: anything,
          placements: fc.oneof(
            fc.constant(undefined),
            fc.array(fc.oneof(fc.constantFrom("home-hero", "email-hero"), fc.string())),
          ),
          forced: fc.oneof(fc.constant(undefined), anything),
          explain: fc.boolean(),
        }),
        (input) => {
          const result = decide(rules, input as unknown as DecisionInput);
          expect(Array.isArray(result.decisions)).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });
});
