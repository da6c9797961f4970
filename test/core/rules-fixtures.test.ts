import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FixtureFileSchema, FixtureSchema, fixtureInput, runFixture } from "../../src/rules/fixtures.ts";
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

  const fixture = (over: Record<string, unknown>) =>
    FixtureSchema.parse({ name: "returning runner", now: "2026-11-22T10:00:00Z", expect: {}, ...over });

  it("reads compound and millisecond ago durations as the rules do", () => {
    const input = fixtureInput(
      rules,
      fixture({
        events: [
          { type: "page_view", ago: "1d12h" },
          { type: "page_view", ago: "90ms" },
        ],
      }),
    );
    if (!input.ok) throw new Error(input.errors.join("; "));
    const now = Date.parse("2026-11-22T10:00:00Z");
    expect(input.input.state?.events.map((e) => now - e.ts)).toEqual([36 * 3600e3, 90]);
  });

  it.each([
    [{ now: "next tuesday" }, /fixture "returning runner": now "next tuesday" is not an ISO time/],
    [
      {
        events: [
          { type: "page_view", ago: "5m" },
          { type: "page_view", ago: "5 minutes" },
        ],
      },
      /fixture "returning runner": events\[1\]\.ago "5 minutes" is not a duration/,
    ],
    [{ events: [{ type: "page_view", ago: "" }] }, /events\[0\]\.ago "" is not a duration/],
  ])("a fixture with %j is an error naming the case, not a decision", (over, message) => {
    const failures = runFixture(rules, fixture({ ...over, expect: { decisions: { "promo-banner": null } } }));
    expect(failures).toEqual([expect.stringMatching(message)]);
  });
});
