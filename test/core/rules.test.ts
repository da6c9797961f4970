import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hashRules, isSupportedSelector, parseRules, rulesJsonSchema } from "../../src/rules/index.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const demo = JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8"));

// biome-ignore lint/suspicious/noExplicitAny: the tests reach into arbitrary parts of a JSON document
type Doc = Record<string, any>;

function withChange(mutate: (doc: Doc) => void): unknown {
  const doc = structuredClone(demo) as Doc;
  mutate(doc);
  return doc;
}

function errorsOf(json: unknown): Array<{ path: string; message: string }> {
  const r = parseRules(json);
  return r.ok ? [] : r.errors;
}

describe("the rules document", () => {
  it("the demo rules are valid", () => {
    expect(errorsOf(demo)).toEqual([]);
  });

  it("the committed JSON Schema is what the zod schema generates (regenerate: npm run rules -- schema)", () => {
    const committed = JSON.parse(readFileSync(join(ROOT, "rules/schema.json"), "utf8"));
    expect(committed).toEqual(JSON.parse(JSON.stringify(rulesJsonSchema())));
    expect(committed.$id).toMatch(/\/v1\.json$/);
  });

  it.each([
    ["the committed file", "./schema.json"],
    ["the published id", "https://northstar.dev/schemas/rules/v1.json"],
    ["no $schema at all (v1, as docs/rules.md says)", undefined],
  ])("reads %s as v1", (_what, ref) => {
    const doc = withChange((d) => {
      if (ref === undefined) delete d.$schema;
      else d.$schema = ref;
    });
    expect(errorsOf(doc)).toEqual([]);
  });

  it.each([
    ["https://northstar.dev/schemas/rules/v2.json", /rules schema v2 is not supported by this worker \(v1/],
    ["./schema-v2.json", /unknown rules schema "\.\/schema-v2\.json"/],
    ["https://example.com/other.json", /unknown rules schema/],
    ["../rules/schema.json", /unknown rules schema/],
  ])("refuses $schema %s, naming the versions it reads", (ref, message) => {
    const errors = errorsOf(withChange((d) => (d.$schema = ref)));
    expect(errors).toEqual([{ path: "$schema", message: expect.stringMatching(message) }]);
  });

  it.each([
    [
      "unknown segment",
      (d: Doc) => (d.experiences[0].audience = { segment: "nope" }),
      "experiences[0].audience.segment",
    ],
    [
      "unknown dimension in a signal",
      (d: Doc) => (d.signals[0].add = { swimming: 1 }),
      "signals[0].add.swimming",
    ],
    ["unknown placement", (d: Doc) => (d.experiences[0].placement = "sidebar"), "experiences[0].placement"],
    ["duplicate experience id", (d: Doc) => (d.experiences[1].id = d.experiences[0].id), "experiences[1].id"],
    [
      "weights that do not sum to 100",
      (d: Doc) => (d.experiments["hero-test"].variants[0].weight = 40),
      "experiments.hero-test.variants",
    ],
    [
      "a selector HTMLRewriter cannot parse",
      (d: Doc) => (d.placements["home-hero"].selector = "##hero"),
      "placements.home-hero.selector",
    ],
    [
      "a half-life that is not a duration",
      (d: Doc) => (d.dimensions.running.halfLife = "a week"),
      "dimensions.running.halfLife",
    ],
    [
      "a catastrophic regex",
      (d: Doc) => (d.conditions.bad = { op: "matches", path: "context.path", value: "(a+)+$" }),
      "conditions.bad.value",
    ],
    [
      "a reference cycle",
      (d: Doc) => {
        d.conditions.a = { ref: "b" };
        d.conditions.b = { ref: "a" };
      },
      "conditions.a",
    ],
    [
      "an unreachable experience",
      (d: Doc) => {
        d.experiences.unshift({
          id: "always",
          placement: "recommendations",
          priority: 99,
          content: { html: "x" },
        });
      },
      "experiences[9]",
    ],
    [
      "a template that does not parse",
      (d: Doc) => (d.experiences[0].content.html = "Hi {{ traits.name "),
      "experiences[0].content.html",
    ],
    [
      "a nested quantifier hidden behind an extra group",
      (d: Doc) => (d.conditions.bad = { op: "matches", path: "context.path", value: "^((a+))+$" }),
      "conditions.bad.value",
    ],
    [
      "a lookbehind",
      (d: Doc) => (d.conditions.bad = { op: "matches", path: "context.path", value: "(?<!x)y" }),
      "conditions.bad.value",
    ],
    [
      "a countWithin filter that does not read the event",
      (d: Doc) =>
        (d.conditions.c = {
          countWithin: {
            event: "page_view",
            window: "1d",
            where: { path: "traits.tier", op: "eq", value: "gold" },
          },
          op: "gte",
          value: 1,
        }),
      "conditions.c.countWithin.where.path",
    ],
    [
      "an event path outside a signal",
      (d: Doc) => (d.segments.s = { condition: { op: "eq", path: "event.type", value: "x" } }),
      "segments.s.condition.path",
    ],
    [
      "an id every object inherits",
      (d: Doc) => (d.segments.constructor = { condition: { op: "exists", path: "traits.x" } }),
      "segments.constructor",
    ],
    [
      "a page pattern with a wildcard in the middle",
      (d: Doc) => (d.placements["home-hero"].pages = ["/running/*/x"]),
      "placements.home-hero.pages[0]",
    ],
    [
      "a set_attribute placement without an attribute name",
      (d: Doc) => (d.placements["home-hero"].action = "set_attribute"),
      "placements.home-hero.attribute",
    ],
    [
      "a prototype path",
      (d: Doc) => (d.conditions.p = { op: "eq", path: "traits.__proto__.x", value: 1 }),
      "conditions.p.path",
    ],
  ])("names the JSON path of %s", (_name, mutate, path) => {
    const errors = errorsOf(withChange(mutate));
    expect(errors.map((e) => e.path)).toContain(path);
    expect(errors.every((e) => e.message.length > 0)).toBe(true);
  });

  const bad =
    (cond: unknown) =>
    (d: Doc): void => {
      d.conditions.bad = cond;
    };
  const impossible: Array<[string, (d: Doc) => void, string, RegExp]> = [
    [
      "gt: true",
      bad({ op: "gt", path: "traits.ltv", value: true }),
      "conditions.bad.value",
      /gt needs a number or string value, not true/,
    ],
    [
      "startsWith: 3",
      bad({ op: "startsWith", path: "context.path", value: 3 }),
      "conditions.bad.value",
      /startsWith needs a string value, not 3/,
    ],
    [
      'semverGte: "abc"',
      bad({ op: "semverGte", path: "traits.app", value: "abc" }),
      "conditions.bad.value",
      /semverGte needs a version such as "2.1.0", not "abc"/,
    ],
    [
      "between with low > high",
      bad({ op: "between", path: "traits.age", value: [30, 18] }),
      "conditions.bad.value",
      /between needs low ≤ high, got \[30, 18\]/,
    ],
    [
      "between with three bounds",
      bad({ op: "between", path: "traits.age", value: [1, 2, 3] }),
      "conditions.bad.value",
      /between needs \[low, high\] numbers/,
    ],
    [
      "eq with an object",
      bad({ op: "eq", path: "traits.tier", value: { a: 1 } }),
      "conditions.bad.value",
      /eq needs a string, number or boolean value/,
    ],
    [
      "in without an array",
      bad({ op: "in", path: "traits.tier", value: "gold" }),
      "conditions.bad.value",
      /in needs an array value/,
    ],
    [
      'exists: "yes"',
      bad({ op: "exists", path: "traits.tier", value: "yes" }),
      "conditions.bad.value",
      /exists takes true, false or no value/,
    ],
    ["lt without a value", bad({ op: "lt", path: "traits.ltv" }), "conditions.bad.value", /lt needs a value/],
    [
      "a countWithin filter value",
      bad({
        countWithin: {
          event: "page_view",
          window: "1d",
          where: { path: "event.props.path", op: "startsWith", value: 3 },
        },
        op: "gte",
        value: 1,
      }),
      "conditions.bad.countWithin.where.value",
      /startsWith needs a string value/,
    ],
    [
      "a zero countWithin window",
      bad({ countWithin: { event: "page_view", window: "0s" }, op: "gte", value: 1 }),
      "conditions.bad.countWithin.window",
      /a duration longer than zero, not "0s"/,
    ],
    [
      "a zero half-life",
      (d: Doc) => (d.dimensions.running.halfLife = "0d"),
      "dimensions.running.halfLife",
      /longer than zero/,
    ],
    [
      "a negative half-life",
      (d: Doc) => (d.dimensions.running.halfLife = "-1d"),
      "dimensions.running.halfLife",
      /a duration such as/,
    ],
    [
      "a zero cap window",
      (d: Doc) => (d.experiences[0].caps = [{ max: 1, per: "0h" }]),
      "experiences[0].caps[0].per",
      /longer than zero/,
    ],
    [
      "a zero suppression window",
      (d: Doc) => (d.experiences[0].suppressAfter = [{ event: "purchase", within: "0m" }]),
      "experiences[0].suppressAfter[0].within",
      /longer than zero/,
    ],
  ];
  it.each(impossible)(
    "reports an operator value or window that could never work: %s",
    (_name, mutate, path, message) => {
      const errors = errorsOf(withChange(mutate));
      expect(errors).toContainEqual({ path, message: expect.stringMatching(message) });
    },
  );

  it("hashes canonically: key order does not change the hash, content does", async () => {
    const a = parseRules(demo);
    const reordered = Object.fromEntries(Object.entries(demo).reverse());
    const b = parseRules(reordered);
    const c = parseRules(withChange((d) => (d.version = "other")));
    if (!a.ok || !b.ok || !c.ok) throw new Error("demo rules should parse");
    expect(await hashRules(a.rules)).toBe(await hashRules(b.rules));
    expect(await hashRules(a.rules)).not.toBe(await hashRules(c.rules));
    expect(await hashRules(a.rules)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("the selector check (the subset HTMLRewriter supports)", () => {
  it.each([
    "#hero",
    "#promo-banner",
    "#category-hero",
    "#recommendations",
    ".promo-banner",
    "#hero > a.cta",
    "main div.card:first-child",
    'a[href^="/running"]',
    "li:nth-child(2n+1)",
    "img:not(.lazy)",
    "h1, h2",
  ])("accepts %s", (selector) => {
    expect(isSupportedSelector(selector)).toBe(true);
  });

  it.each(["", "##hero", "div >", "a:hover", "p::before", "div ~ p", "div + p", "[href"])(
    "rejects %j",
    (selector) => {
      expect(isSupportedSelector(selector)).toBe(false);
    },
  );
});
