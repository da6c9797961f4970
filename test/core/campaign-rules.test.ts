import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decide } from "../../src/core/decide.ts";
import { goalsReached } from "../../src/core/goals.ts";
import { compileRules, hashRules, parseRules } from "../../src/rules/index.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const demo = JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8"));

// biome-ignore lint/suspicious/noExplicitAny: the tests reach into arbitrary parts of a JSON document
type Doc = Record<string, any>;

function errorsOf(mutate: (doc: Doc) => void): Array<{ path: string; message: string }> {
  const doc = structuredClone(demo) as Doc;
  mutate(doc);
  const r = parseRules(doc);
  return r.ok ? [] : r.errors;
}

const silentFor = (window: string) => ({ countWithin: { event: "email_open", window }, op: "eq", value: 0 });

describe("windows the history can hold", () => {
  it("refuses a countWithin longer than the 30 days of history kept by default, naming the path and the limit", () => {
    const errors = errorsOf((d) => {
      d.conditions.silent = silentFor("180d");
    });
    expect(errors).toEqual([
      {
        path: "conditions.silent.countWithin.window",
        message: expect.stringMatching(/"180d" .* 30 days of history kept \(settings\.historyDays\)/),
      },
    ]);
  });

  it("accepts a window of exactly the history kept", () => {
    const errors = errorsOf((d) => {
      d.conditions.silent = silentFor("30d");
    });
    expect(errors).toEqual([]);
  });

  it("accepts a longer window when settings.historyDays says the log keeps that long", () => {
    const errors = errorsOf((d) => {
      d.settings.historyDays = 180;
      d.conditions.silent = silentFor("180d");
    });
    expect(errors).toEqual([]);
  });

  it("checks countWithin nested in an audience too", () => {
    const errors = errorsOf((d) => {
      d.experiences[0].audience = { all: [d.experiences[0].audience, silentFor("31d")] };
    });
    expect(errors.map((e) => e.path)).toEqual(["experiences[0].audience.all[1].countWithin.window"]);
  });
});

describe("campaign dates", () => {
  it("refuses an end that is not after the start", () => {
    const errors = errorsOf((d) => {
      d.experiences[0].startAt = "2027-11-26T00:00:00+01:00";
      d.experiences[0].endAt = "2027-11-25T23:00:00Z";
      d.experiments["hero-test"].startAt = "2027-11-26T00:00:00+01:00";
      d.experiments["hero-test"].endAt = "2027-11-26T00:00:00+01:00";
    });
    expect(errors.map((e) => e.path)).toEqual(["experiments.hero-test.endAt", "experiences[0].endAt"]);
  });

  it.each([
    ["a date without a time", "2027-11-26"],
    ["a local time without an offset", "2027-11-26T00:00:00"],
    ["a day that does not exist", "2027-02-30T00:00:00Z"],
  ])("refuses %s", (_what, startAt) => {
    const errors = errorsOf((d) => {
      d.experiences[0].startAt = startAt;
    });
    expect(errors.map((e) => e.path)).toEqual(["experiences[0].startAt"]);
  });

  it("explains an experience outside its dates as not started, then ended, with the instant", async () => {
    const parsed = parseRules(demo);
    if (!parsed.ok) throw new Error("demo rules should parse");
    const rules = compileRules(parsed.rules, await hashRules(parsed.rules));
    const outcomeAt = (iso: string) => {
      const result = decide(rules, {
        visitorId: "v1",
        now: Date.parse(iso),
        traits: {},
        state: null,
        context: { channel: "web", path: "/running" } as never,
        consent: {},
        placements: ["promo-banner", "category-hero"],
        explain: true,
      });
      const banner = result.explanation?.["promo-banner"]?.find(
        (c) => c.experience === "black-friday-banner",
      );
      const hero = result.explanation?.["category-hero"]?.find((c) => c.experience === "cyber-monday-hero");
      return { banner, hero, assignments: result.assignments };
    };
    const before = outcomeAt("2027-11-25T22:59:59Z");
    expect(before.banner).toMatchObject({
      outcome: "not_started",
      detail: "starts 2027-11-25T23:00:00.000Z",
    });
    expect(before.hero).toMatchObject({
      outcome: "not_started",
      detail: "experiment cyber-monday-copy starts 2027-11-28T23:00:00.000Z",
    });
    expect(before.assignments).not.toHaveProperty("cyber-monday-copy");
    const after = outcomeAt("2027-11-29T23:00:00Z");
    expect(after.banner).toMatchObject({ outcome: "ended", detail: "ended 2027-11-29T23:00:00.000Z" });
    expect(after.hero).toMatchObject({ outcome: "ended" });
    expect(after.assignments).not.toHaveProperty("cyber-monday-copy");
  });

  it("counts a conversion for an experiment only within its dates", async () => {
    const parsed = parseRules(demo);
    if (!parsed.ok) throw new Error("demo rules should parse");
    const rules = compileRules(parsed.rules, await hashRules(parsed.rules));
    const reachedAt = (iso: string) => {
      const purchase = { id: "p1", type: "purchase", ts: Date.parse(iso), channel: "web", props: {} };
      return goalsReached({ "cyber-monday-copy": "urgent" }, [purchase], rules).map((r) => r.experiment);
    };
    expect(reachedAt("2027-11-29T12:00:00+01:00")).toEqual(["cyber-monday-copy"]);
    expect(reachedAt("2027-11-30T00:00:00+01:00")).toEqual([]);
    expect(reachedAt("2027-11-28T23:59:59+01:00")).toEqual([]);
  });
});
