import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decide } from "../../src/core/decide.ts";
import type { Condition } from "../../src/rules/index.ts";
import { compile, context, DAY, event, experienceWins, HOUR, MIN, NOW, stateOf } from "./helpers.ts";

// Each condition is tested through a one-experience document, as an author would write it.
async function matches(
  audience: Condition,
  input: Partial<Parameters<typeof decide>[1]> = {},
  extra: Record<string, unknown> = {},
) {
  const doc = {
    version: "t",
    dimensions: { running: { halfLife: "1d", cap: 100 }, hiking: { halfLife: "1d", cap: 100 } },
    signals: [
      {
        id: "r",
        event: "product_view",
        when: { op: "eq", path: "event.props.category", value: "running" },
        add: { running: 4 },
      },
      {
        id: "h",
        event: "product_view",
        when: { op: "eq", path: "event.props.category", value: "hiking" },
        add: { hiking: 4 },
      },
    ],
    placements: { slot: { selector: "#slot" } },
    experiences: [{ id: "x", placement: "slot", audience, content: { html: "yes" } }],
    experiments: {
      exp: {
        seed: "s",
        variants: [
          { id: "a", weight: 50 },
          { id: "b", weight: 50 },
        ],
        goal: "purchase",
      },
    },
    ...extra,
  };
  return experienceWins(doc, input);
}

describe("comparison operators", () => {
  it.each([
    [{ op: "eq", path: "traits.tier", value: "gold" }, { tier: "gold" }, true],
    [{ op: "eq", path: "traits.tier", value: "gold" }, { tier: "silver" }, false],
    [{ op: "eq", path: "traits.tier", value: "gold" }, {}, false],
    [{ op: "neq", path: "traits.tier", value: "gold" }, {}, false],
    [{ op: "neq", path: "traits.tier", value: "gold" }, { tier: "silver" }, true],
    [{ op: "gte", path: "traits.ltv", value: 100 }, { ltv: 100 }, true],
    [{ op: "gt", path: "traits.ltv", value: 100 }, { ltv: 100 }, false],
    [{ op: "lt", path: "traits.ltv", value: 100 }, { ltv: "50" }, false],
    [{ op: "in", path: "traits.tier", value: ["gold", "vip"] }, { tier: "vip" }, true],
    [{ op: "in", path: "traits.tags", value: ["a"] }, { tags: ["b", "a"] }, true],
    [{ op: "in", path: "traits.tags", value: ["a"] }, { tags: [] }, false],
    [{ op: "contains", path: "traits.email", value: "@example" }, { email: "ana@example.com" }, true],
    [{ op: "contains", path: "traits.tags", value: "x" }, { tags: ["x"] }, true],
    [{ op: "startsWith", path: "traits.sku", value: "RUN-" }, { sku: "RUN-1" }, true],
    [{ op: "endsWith", path: "traits.sku", value: "-1" }, { sku: 1 }, false],
    [{ op: "exists", path: "traits.firstName" }, { firstName: "Ana" }, true],
    [{ op: "exists", path: "traits.firstName" }, { firstName: null }, false],
    [{ op: "exists", path: "traits.firstName", value: false }, {}, true],
    [{ op: "between", path: "traits.age", value: [18, 30] }, { age: 30 }, true],
    [{ op: "between", path: "traits.age", value: [18, 30] }, { age: 31 }, false],
    [{ op: "matches", path: "traits.code", value: "^[A-Z]{3}\\d+$" }, { code: "ABC123" }, true],
    [{ op: "semverGte", path: "traits.app", value: "2.10.0" }, { app: "2.9.9" }, false],
    [{ op: "semverGte", path: "traits.app", value: "2.10.0" }, { app: "v2.10.1" }, true],
    [{ op: "semverLt", path: "traits.app", value: "2.10.0" }, { app: "not a version" }, false],
    [{ op: "eq", path: "traits.a.b.c", value: 1 }, { a: { b: "string" } }, false],
    [{ op: "lte", path: "traits.ltv", value: 100 }, { ltv: 100 }, true],
    [{ op: "lte", path: "traits.ltv", value: 100 }, { ltv: 100.5 }, false],
    [{ op: "lte", path: "traits.since", value: "2026-01-01" }, { since: "2025-12-31" }, true],
    [{ op: "endsWith", path: "traits.sku", value: "-1" }, { sku: "RUN-1" }, true],
    [{ op: "matches", path: "traits.code", value: "^[A-Z]{3}\\d+$" }, { code: "abc123" }, false],
    [{ op: "semverEq", path: "traits.app", value: "2.1" }, { app: "2.1.0" }, true],
    [{ op: "semverEq", path: "traits.app", value: "2.1.0" }, { app: "2.1.1" }, false],
    [{ op: "semverGt", path: "traits.app", value: "2.9.0" }, { app: "2.10.0" }, true],
    [{ op: "semverGt", path: "traits.app", value: "2.10.0" }, { app: "2.10.0" }, false],
    [{ op: "semverLt", path: "traits.app", value: "2.10.0" }, { app: "2.9.9" }, true],
    [{ op: "semverLt", path: "traits.app", value: "2.10.0" }, { app: "2.10.0" }, false],
    [{ op: "semverLte", path: "traits.app", value: "2.10.0" }, { app: "2.10.0" }, true],
    [{ op: "semverLte", path: "traits.app", value: "2.10.0" }, { app: "3.0.0" }, false],
  ] as const)("%j on %j → %s", async (cond, traits, expected) => {
    expect(await matches(cond as Condition, { traits })).toBe(expected);
  });

  it("reads the request context: path, UTM, country, device", async () => {
    const ctx = context({
      path: "/running",
      query: { utm_source: "newsletter" },
      geo: { country: "FR", region: null, city: null, timezone: null },
      device: "mobile",
    });
    expect(
      await matches(
        {
          all: [
            { op: "startsWith", path: "context.path", value: "/run" },
            { op: "eq", path: "context.query.utm_source", value: "newsletter" },
            { op: "eq", path: "context.geo.country", value: "FR" },
            { op: "eq", path: "context.device", value: "mobile" },
          ],
        },
        { context: ctx },
      ),
    ).toBe(true);
  });
});

describe("behavioural conditions", () => {
  it("counts events within a window, at the window's edge", async () => {
    const cond: Condition = { countWithin: { event: "product_view", window: "1h" }, op: "gte", value: 2 };
    const inside = stateOf([event("product_view", 10 * MIN), event("product_view", HOUR - 1)]);
    const edge = stateOf([event("product_view", 10 * MIN), event("product_view", HOUR)]);
    expect(await matches(cond, { state: inside })).toBe(true);
    expect(await matches(cond, { state: edge })).toBe(false);
  });

  it.each([
    ["eq", 2, true],
    ["eq", 3, false],
    ["lt", 3, true],
    ["lt", 2, false],
    ["lte", 2, true],
    ["lte", 1, false],
  ] as const)("countWithin %s %i over two events in the window → %s", async (op, value, expected) => {
    const cond: Condition = { countWithin: { event: "product_view", window: "1d" }, op, value };
    // The third view is older than the window and is not counted.
    const s = stateOf([
      event("product_view", 2 * DAY),
      event("product_view", HOUR),
      event("product_view", MIN),
    ]);
    expect(await matches(cond, { state: s })).toBe(expected);
  });

  it("filters counted events by a property", async () => {
    const cond: Condition = {
      countWithin: {
        event: "product_view",
        window: "7d",
        where: { path: "event.props.category", op: "eq", value: "hiking" },
      },
      op: "gte",
      value: 1,
    };
    expect(
      await matches(cond, { state: stateOf([event("product_view", DAY, { category: "running" })]) }),
    ).toBe(false);
    expect(
      await matches(cond, { state: stateOf([event("product_view", DAY, { category: "hiking" })]) }),
    ).toBe(true);
  });

  it("silence: add to cart then no purchase for 30 minutes", async () => {
    const cond: Condition = { silence: { after: "add_to_cart", without: ["purchase"], for: "30m" } };
    expect(await matches(cond, { state: stateOf([event("add_to_cart", 29 * MIN)]) })).toBe(false);
    expect(await matches(cond, { state: stateOf([event("add_to_cart", 30 * MIN)]) })).toBe(true);
    expect(
      await matches(cond, { state: stateOf([event("add_to_cart", 40 * MIN), event("purchase", 35 * MIN)]) }),
    ).toBe(false);
    expect(await matches(cond, { state: null })).toBe(false);
  });

  it("intent: top dimension and thresholds decay with time", async () => {
    const runner = [
      event("product_view", HOUR, { category: "running" }),
      event("product_view", HOUR, { category: "running" }),
    ];
    const rules = {
      dimensions: { running: { halfLife: "1d", cap: 100 }, hiking: { halfLife: "1d", cap: 100 } },
    };
    const scoring = await compile({
      version: "s",
      ...rules,
      signals: [
        {
          id: "r",
          event: "product_view",
          when: { op: "eq", path: "event.props.category", value: "running" },
          add: { running: 4 },
        },
      ],
    });
    const fresh = stateOf(runner, scoring);
    expect(await matches({ intent: { top: "running" } }, { state: fresh })).toBe(true);
    expect(await matches({ intent: { dimension: "running", above: 7 } }, { state: fresh })).toBe(true);
    // Two days later the score has halved twice: 8 → ~2.
    expect(
      await matches({ intent: { dimension: "running", above: 7 } }, { state: fresh, now: NOW + 2 * DAY }),
    ).toBe(false);
    expect(await matches({ intent: { top: "hiking" } }, { state: fresh })).toBe(false);
  });

  it("inactivity, consent, experiment membership, time of day in the visitor's timezone", async () => {
    expect(
      await matches({ inactive: { for: "180d" } }, { state: stateOf([event("page_view", 200 * DAY)]) }),
    ).toBe(true);
    expect(
      await matches({ inactive: { for: "180d" } }, { state: stateOf([event("page_view", 2 * DAY)]) }),
    ).toBe(false);
    expect(await matches({ consent: "marketing" }, { consent: { marketing: true } })).toBe(true);
    expect(await matches({ consent: "marketing" }, { consent: {} })).toBe(false);
    const assigned = { ...stateOf([event("page_view", MIN)]), assignments: { exp: "b" } };
    expect(await matches({ experiment: "exp", variant: "b" }, { state: assigned })).toBe(true);
    expect(await matches({ experiment: "exp", variant: "a" }, { state: assigned })).toBe(false);
    // NOW is 12:00 UTC = 21:00 in Tokyo.
    const tokyo = context({ geo: { country: "JP", region: null, city: null, timezone: "Asia/Tokyo" } });
    expect(await matches({ timeOfDay: { from: "20:00", to: "22:00" } }, { context: tokyo })).toBe(true);
    expect(await matches({ timeOfDay: { from: "20:00", to: "22:00" } })).toBe(false);
    expect(await matches({ timeOfDay: { from: "11:00", to: "01:00" } })).toBe(true);
    expect(await matches({ dayOfWeek: [0] })).toBe(true); // 2026-11-22 is a Sunday
  });

  it("content affinity from the tags of engaged content", async () => {
    const s = stateOf([
      event("product_view", HOUR, { tags: ["trail", "running"] }),
      event("product_view", MIN, { tags: ["trail"] }),
    ]);
    expect(await matches({ affinity: { tag: "trail" } }, { state: s })).toBe(true);
    expect(await matches({ affinity: { tag: "running" } }, { state: s })).toBe(false);
  });

  it("all / any / not / named conditions", async () => {
    const extra = { conditions: { gold: { op: "eq", path: "traits.tier", value: "gold" } } };
    expect(
      await matches(
        { any: [{ ref: "gold" }, { op: "eq", path: "traits.tier", value: "vip" }] },
        { traits: { tier: "vip" } },
        extra,
      ),
    ).toBe(true);
    expect(await matches({ not: { ref: "gold" } }, { traits: { tier: "gold" } }, extra)).toBe(false);
    expect(
      await matches(
        { all: [{ ref: "gold" }, { not: { op: "exists", path: "traits.banned" } }] },
        { traits: { tier: "gold" } },
        extra,
      ),
    ).toBe(true);
  });
});

describe("explanations", () => {
  it("say that a path is missing rather than that a comparison failed", async () => {
    const rules = await compile({
      version: "t",
      placements: { slot: { selector: "#slot" } },
      experiences: [
        {
          id: "x",
          placement: "slot",
          audience: { op: "semverGte", path: "traits.appVersion", value: "2.0.0" },
          content: { html: "yes" },
        },
      ],
    });
    const explain = (traits: Record<string, unknown>) =>
      decide(rules, {
        visitorId: "v1",
        now: NOW,
        traits,
        state: null,
        context: context(),
        consent: {},
        explain: true,
      }).explanation?.slot?.[0];
    expect(explain({})).toMatchObject({
      experience: "x",
      outcome: "audience",
      detail: "experiences[0].audience: traits.appVersion is missing",
    });
    expect(explain({ appVersion: "1.9.0" })?.detail).toBe(
      'experiences[0].audience: traits.appVersion semverGte "2.0.0"',
    );
  });
});

describe("evaluation never throws", () => {
  it("on any profile, state or context shape", async () => {
    const rules = await compile(
      JSON.parse(JSON.stringify((await import("../../rules/northstar.rules.json")).default)),
    );
    const json = fc.jsonValue({ maxDepth: 4 });
    fc.assert(
      fc.property(json, json, json, fc.integer(), (traits, stateish, custom, now) => {
        const state = typeof stateish === "object" && stateish !== null ? (stateish as never) : null;
        const result = decide(rules, {
          visitorId: "fuzz",
          now,
          traits: (typeof traits === "object" && traits !== null ? traits : {}) as Record<string, unknown>,
          state,
          context: context({ custom: { x: custom } }),
          consent: {},
          explain: true,
        });
        expect(Array.isArray(result.decisions)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("random documents either validate or fail with path-named errors", async () => {
    const { parseRules } = await import("../../src/rules/index.ts");
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (doc) => {
        const r = parseRules(doc);
        if (!r.ok)
          for (const e of r.errors) expect(typeof e.path === "string" && e.message.length > 0).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
