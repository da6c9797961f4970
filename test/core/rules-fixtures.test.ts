import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FixtureFileSchema, runFixture } from "../../src/rules/fixtures.ts";
import { compileRules, hashRules, parseRules } from "../../src/rules/index.ts";

/**
 * The rule tests that `npm run rules -- test` runs (rules/tests/*.json, OPA-style: a person on a
 * page at a time → what the rules must decide), run here too so CI and editors report them alike.
 */
const ROOT = new URL("../..", import.meta.url).pathname;
const demo = JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8"));

describe("rule tests (rules/tests/*.json)", async () => {
  const parsed = parseRules(demo);
  if (!parsed.ok) throw new Error(`demo rules should parse: ${JSON.stringify(parsed.errors)}`);
  const rules = compileRules(parsed.rules, await hashRules(parsed.rules));
  const dir = join(ROOT, "rules/tests");
  const files = readdirSync(dir).filter((f) => f.endsWith(".json"));

  it("there are fixtures to run", () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    const cases = FixtureFileSchema.parse(JSON.parse(readFileSync(join(dir, file), "utf8"))).cases;
    it.each(cases.map((c) => [`${file}: ${c.name}`, c] as const))("%s", (_name, fixture) => {
      expect(runFixture(rules, fixture)).toEqual([]);
    });
  }

  it("a fixture that expects the wrong thing fails with a readable message", () => {
    const [failure] = runFixture(
      rules,
      FixtureFileSchema.parse({
        cases: [
          {
            name: "wrong",
            now: "2026-11-22T10:00:00Z",
            context: { path: "/" },
            expect: { decisions: { "promo-banner": "vip-banner" } },
          },
        ],
      }).cases[0]!,
    );
    expect(failure).toMatch(/promo-banner: expected vip-banner, got first-visit-offer/);
  });
});
