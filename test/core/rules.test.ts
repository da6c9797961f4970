import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FixtureFileSchema, runFixture } from "../../src/rules/fixtures.ts";
import {
  compileRules,
  hashRules,
  parseRules,
  type RulesDocument,
  rulesJsonSchema,
} from "../../src/rules/index.ts";

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

  it("rejects an unknown major version", () => {
    const errors = errorsOf(withChange((d) => (d.$schema = "https://northstar.dev/schemas/rules/v2.json")));
    expect(errors[0]?.path).toBe("$schema");
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
      "a prototype path",
      (d: Doc) => (d.conditions.p = { op: "eq", path: "traits.__proto__.x", value: 1 }),
      "conditions.p.path",
    ],
  ])("names the JSON path of %s", (_name, mutate, path) => {
    const errors = errorsOf(withChange(mutate));
    expect(errors.map((e) => e.path)).toContain(path);
    expect(errors.every((e) => e.message.length > 0)).toBe(true);
  });

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

describe("rule tests (rules/tests/*.json)", async () => {
  const parsed = parseRules(demo);
  if (!parsed.ok) throw new Error("demo rules should parse");
  const rules = compileRules(parsed.rules as RulesDocument, await hashRules(parsed.rules));
  const dir = join(ROOT, "rules/tests");
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
    const cases = FixtureFileSchema.parse(JSON.parse(readFileSync(join(dir, file), "utf8"))).cases;
    it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, fixture) => {
      expect(runFixture(rules, fixture)).toEqual([]);
    });
  }
});
