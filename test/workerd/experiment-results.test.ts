import { createExecutionContext, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, describe, expect, it } from "vitest";
import bundledDocument from "../../rules/northstar.rules.json";
import { armCounts, mergeTallies } from "../../src/core/experiment-tally.ts";
import { handle } from "../../src/http/app.ts";
import type { ExperimentResults } from "../../src/http/experiment-results.ts";
import type { ExperimentDO } from "../../src/measure/experiment-do.ts";
import {
  countConversions,
  experimentObject,
  experimentShard,
  personRows,
  rekeyVisitor,
  SHARDS,
  shardName,
  shardOf,
} from "../../src/measure/experiment-object.ts";
import { visitorObject } from "../../src/state/visitor-object.ts";
import {
  ADMIN,
  BROWSER_UA,
  eid,
  HALVES,
  idOf,
  publishWithExperiment,
  publishWithGlobalHoldout,
  SERVER,
  unpublishRules,
  visitorCookie,
} from "./helpers.ts";

/** One request through the worker, returning once the work it left behind (waitUntil) is done. */
async function settled(request: Request, bindings: typeof env = env): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await handle(request, bindings, ctx);
  const body = await res.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return new Response(body, res);
}

async function results(
  id: string,
  bindings: typeof env = env,
): Promise<{ res: Response; body: ExperimentResults }> {
  const res = await settled(
    new Request(`https://shop.test/_ns/v1/experiments/${id}`, { headers: ADMIN }),
    bindings,
  );
  expect(res.status).toBe(200);
  return { res, body: (await res.json()) as ExperimentResults };
}

const goalOf = (body: ExperimentResults, goal: string) => body.goals.find((g) => g.id === goal)!.report;
const armOf = (body: ExperimentResults, goal: string, arm: string) =>
  goalOf(body, goal).arms.find((a) => a.id === arm)!;

const hero = bundledDocument.experiments["hero-test"];
const DAY = 86_400_000;

afterAll(unpublishRules);

describe("goals with a value, whichever way the event comes", () => {
  it("a purchase through the beacon, /v1/events and /v1/decide counts once per visitor, and every order's value adds up", async () => {
    await publishWithExperiment("goals-1", "hero-test", {
      ...hero,
      goals: [{ id: "revenue", event: "purchase", value: "props.value", window: "7d" }],
    });
    const page = (cookie?: string) =>
      settled(
        new Request("https://shop.test/", {
          headers: { "user-agent": BROWSER_UA, ...(cookie ? { cookie } : {}) },
        }),
      );
    const armShown = (html: string) =>
      html.includes("Gear for every trail")
        ? "control"
        : html.includes("Go further this weekend")
          ? "bold"
          : "holdout";
    const purchase = (id: string, value: number) => ({
      id,
      type: "purchase",
      props: { value, currency: "EUR" },
    });
    const beacon = (cookie: string, events: unknown[]) =>
      settled(
        new Request("https://shop.test/_ns/v1/events", {
          method: "POST",
          headers: { "user-agent": BROWSER_UA, cookie, "content-type": "text/plain;charset=UTF-8" },
          body: JSON.stringify({ sentAt: Date.now(), events }),
        }),
      );
    const server = (path: string, body: Record<string, unknown>) =>
      settled(
        new Request(`https://shop.test/_ns/v1/${path}`, {
          method: "POST",
          headers: { ...SERVER, "content-type": "application/json" },
          body: JSON.stringify({ sentAt: Date.now(), ...body }),
        }),
      );

    const before = (await results("hero-test")).body;
    const visitors: Array<{ cookie: string; arm: string; value: number }> = [];
    for (const path of ["beacon", "events", "decide"] as const) {
      const first = await page();
      const cookie = visitorCookie(first);
      const arm = armShown(await first.text());
      // A request without a cookie records nothing (docs/decisions.md, record 12): the visitor is
      // assigned and exposed from their next page, which shows them the same arm.
      expect(armShown(await (await page(cookie)).text())).toBe(arm);
      const visitorId = idOf(cookie);
      const one = purchase(eid(), 40);
      const two = purchase(eid(), 15);
      // Each order sent twice (a retry with the same id), and a second order: one conversion, 55 of value.
      for (const events of [[one], [one, two]]) {
        const res =
          path === "beacon"
            ? await beacon(cookie, events)
            : path === "events"
              ? await server("events", { visitorId, events })
              : await server("decide", { visitorId, placements: ["home-hero"], events });
        expect([200, 202]).toContain(res.status);
      }
      visitors.push({ cookie, arm, value: 55 });
    }

    const after = (await results("hero-test")).body;
    for (const arm of ["control", "bold", "holdout"]) {
      const was = armOf(before, "revenue", arm);
      const now = armOf(after, "revenue", arm);
      const mine = visitors.filter((v) => v.arm === arm);
      expect({
        arm,
        visitors: now.visitors - was.visitors,
        conversions: now.conversions - was.conversions,
        value: now.value.total - was.value.total,
      }).toEqual({ arm, visitors: mine.length, conversions: mine.length, value: 55 * mine.length });
    }
    // The primary goal (add_to_cart) saw none of it, and keeps its place and its old report.
    expect(after.goals[0]).toMatchObject({ id: "add_to_cart", primary: true, value: null });
    expect(after.goals[1]).toMatchObject({
      id: "revenue",
      primary: false,
      value: "props.value",
      windowMs: 7 * DAY,
    });
    expect(after.report.arms.map((a) => a.id)).toEqual(["control", "bold"]);
    // Today's cohort is in the daily series and the weekly results.
    const today = new Date().toISOString().slice(0, 10);
    expect(
      after.daily.filter((d) => d.date === today).reduce((s, d) => s + (d.conversions.revenue ?? 0), 0),
    ).toBe(
      before.daily.filter((d) => d.date === today).reduce((s, d) => s + (d.conversions.revenue ?? 0), 0) + 3,
    );
    expect(after.weekly.length).toBeGreaterThan(0);
    expect(after.shards).toEqual({ total: SHARDS, answered: SHARDS, missing: [] });
  });
});

describe("results from many visitors across the shards", () => {
  const experiment = "shard-test";
  const at = Date.now() - DAY;
  /** 320 visitors exposed 50/50: 1 in 4 of control buys for 100; of bold, 1 in 4 for 100 and 1 in 4 for 400. */
  const visitors = Array.from({ length: 320 }, (_, i) => ({
    id: `v_shard_${i}`,
    variant: i % 2 === 0 ? "control" : "bold",
    value: ({ 0: 100, 1: 100, 3: 400 } as Record<number, number>)[i % 8] ?? 0,
  }));

  it("exposures and conversions recorded in each visitor's shard add up in the results, with intervals", async () => {
    await publishWithExperiment("shards-1", experiment, {
      seed: "shard-test",
      variants: HALVES,
      goal: "revenue",
      goals: [{ id: "revenue", event: "purchase", value: "props.value" }],
    });
    for (const v of visitors)
      await experimentObject(env, experiment, v.id).expose([{ visitorId: v.id, variant: v.variant, at }]);
    for (const v of visitors.filter((v) => v.value > 0))
      await countConversions(env, v.id, [
        {
          experiment,
          variant: v.variant,
          goal: "revenue",
          at: at + 1000,
          value: v.value,
          windowMs: Number.POSITIVE_INFINITY,
        },
      ]);
    expect(new Set(visitors.map((v) => shardOf(v.id))).size).toBe(SHARDS);

    const { body } = await results(experiment);
    const control = armOf(body, "revenue", "control");
    const bold = armOf(body, "revenue", "bold");
    expect([control.visitors, control.conversions, control.value.total]).toEqual([160, 40, 4000]);
    expect([bold.visitors, bold.conversions, bold.value.total]).toEqual([160, 80, 20000]);
    expect(bold.value.mean).toBeCloseTo(125, 10);
    expect(bold.value.interval).not.toBeNull();
    expect(bold.valueUplift!.absolute).toBeCloseTo(100, 10);
    expect(bold.valueUplift!.absoluteInterval[0]).toBeLessThan(100);
    expect(bold.valueUplift!.absoluteInterval[1]).toBeGreaterThan(100);
    expect(bold.valueUplift!.relativeInterval).not.toBeNull();
    expect(bold.uplift!.absoluteInterval[0]).toBeLessThan(bold.uplift!.absolute);
    expect(body.report.arms.map((a) => [a.id, a.exposures, a.conversions])).toEqual([
      ["control", 160, 40],
      ["bold", 160, 80],
    ]);
    expect(body.goals[0]!.report.sampleRatioMismatch.flagged).toBe(false);
    expect(body.shards).toEqual({ total: SHARDS, answered: SHARDS, missing: [] });
  });

  it("a shard that does not answer is named, and its visitors are left out rather than the whole answer", async () => {
    const silent = 3;
    const silentId = env.EXPERIMENTS.idFromName(shardName(experiment, silent));
    const experiments = {
      idFromName: (name: string) => env.EXPERIMENTS.idFromName(name),
      get: (id: DurableObjectId) =>
        id.equals(silentId)
          ? { tally: () => Promise.reject(new Error("injected: shard unavailable")) }
          : env.EXPERIMENTS.get(id),
    };
    const { res, body } = await results(experiment, {
      ...env,
      EXPERIMENTS: experiments,
    } as unknown as typeof env);
    expect(body.shards).toEqual({ total: SHARDS, answered: SHARDS - 1, missing: [silent] });
    expect(res.headers.get("x-northstar-fail-open")).toBe("do-error");
    const counted = visitors.filter((v) => shardOf(v.id) !== silent).length;
    const arms = goalOf(body, "revenue").arms;
    expect(arms.reduce((s, a) => s + a.visitors, 0)).toBe(counted);
  });

  it("flags a split that does not follow the weights", async () => {
    const skewed = "srm-test";
    await publishWithExperiment("srm-1", skewed, { seed: "srm", variants: HALVES, goal: "purchase" });
    // Broken assignment: 300 in control, 100 in bold.
    for (let i = 0; i < 400; i++) {
      const id = `v_srm_${i}`;
      await experimentObject(env, skewed, id).expose([
        { visitorId: id, variant: i < 300 ? "control" : "bold", at },
      ]);
    }
    const { body } = await results(skewed);
    expect(body.report.sampleRatioMismatch.flagged).toBe(true);
    expect(body.goals[0]!.report.sampleRatioMismatch.flagged).toBe(true);
    expect(body.goals[0]!.report.note).toContain("sample ratio mismatch");
  });
});

describe("programme lift", () => {
  it("everyone personalized against the global holdout, per goal and per ISO week of first exposure", async () => {
    await publishWithGlobalHoldout("programme-1", {
      fraction: 0.5,
      seed: "programme",
      goal: "purchase",
      goals: [{ id: "purchase", event: "purchase", value: "props.value" }],
    });
    const now = Date.now();
    // Two cohorts eight days apart, so in two ISO weeks; in each, 1 of 4 held-out visitors buys and 3
    // of 4 personalized ones do, for 50 each.
    let n = 0;
    for (const exposedAt of [now - 10 * DAY, now - 2 * DAY]) {
      for (const group of ["holdout", "personalized"]) {
        for (let i = 0; i < 4; i++) {
          const visitorId = `v_programme_visitor_${++n}`;
          // What a page's decision leaves behind (src/edge/personalize.ts), at the simulated time.
          await visitorObject(env, visitorId).recordDecision({
            now: exposedAt,
            exposures: [],
            assignments: { "global-holdout": group },
          });
          await experimentObject(env, "global-holdout", visitorId).expose([
            { visitorId, variant: group, at: exposedAt },
          ]);
          const buys = group === "holdout" ? i === 0 : i < 3;
          if (buys) {
            const res = await settled(
              new Request("https://shop.test/_ns/v1/events", {
                method: "POST",
                headers: { ...SERVER, "content-type": "application/json" },
                body: JSON.stringify({
                  visitorId,
                  events: [{ id: eid(), type: "purchase", props: { value: 50 } }],
                }),
              }),
            );
            expect(res.status).toBe(202);
          }
        }
      }
    }
    const { body } = await results("global-holdout");
    expect(body.weekly).toHaveLength(2);
    for (const week of body.weekly) {
      expect(week.week).toMatch(/^\d{4}-W\d{2}$/);
      const report = week.goals.find((g) => g.id === "purchase")!.report;
      const held = report.arms.find((a) => a.id === "holdout")!;
      const personalized = report.arms.find((a) => a.id === "personalized")!;
      expect(report.control).toBe("holdout");
      expect([held.visitors, held.conversions, held.value.total]).toEqual([4, 1, 50]);
      expect([personalized.visitors, personalized.conversions, personalized.value.total]).toEqual([
        4, 3, 150,
      ]);
      expect(personalized.uplift!.absolute).toBeCloseTo(0.5, 10);
      expect(personalized.uplift!.absoluteInterval[0]).toBeLessThan(0.5);
      expect(personalized.valueUplift!.absolute).toBeCloseTo(25, 10);
    }
    const overall = armOf(body, "purchase", "personalized");
    expect([overall.visitors, overall.conversions]).toEqual([8, 6]);
  });
});

describe("counts kept before sharding", () => {
  it("are moved by the experiment's first object to the shards that own their visitors, conversions included", async () => {
    const experiment = "legacy-test";
    const ids = Array.from({ length: 40 }, (_, i) => `v_legacy_${i}`);
    const legacy = env.EXPERIMENTS.get(env.EXPERIMENTS.idFromName(experiment));
    await runInDurableObject(legacy, async (instance: ExperimentDO, state) => {
      // The single object's table as it was written: a conversion is a time on the exposure row.
      for (const [i, id] of ids.entries())
        state.storage.sql.exec(
          "INSERT INTO exposure (visitor, variant, at, converted_at) VALUES (?, ?, ?, ?)",
          id,
          i % 2 ? "bold" : "control",
          1000 + i,
          i % 4 === 0 ? 5000 + i : null,
        );
      state.storage.sql.exec("DELETE FROM meta");
      await instance.alarm();
    });
    const tallies = await Promise.all(
      Array.from({ length: SHARDS }, (_, shard) =>
        experimentShard(env, experiment, shard).tally("add_to_cart"),
      ),
    );
    const arms = armCounts(mergeTallies(tallies), "add_to_cart");
    expect(arms.get("control")).toMatchObject({ visitors: 20, conversions: 10 });
    expect(arms.get("bold")).toMatchObject({ visitors: 20, conversions: 0 });
    // Each visitor's rows now live in the shard that owns them, where their next event goes.
    for (const id of ids) {
      const rows = await experimentObject(env, experiment, id).rows([id]);
      expect(rows.map((r) => r.visitorId)).toEqual([id]);
    }
    const stray = ids.find((id) => shardOf(id) !== 0)!;
    expect(await experimentShard(env, experiment, 0).rows([stray])).toEqual([]);
    expect((await personRows(env, experiment, [stray])).length).toBe(1);
  });
});

describe("a goal's window", () => {
  it("counts a conversion only within the window after the visitor's first exposure, and never before it", async () => {
    const experiment = "window-test";
    const now = Date.now();
    const week = 7 * DAY;
    const cases = [
      { id: "v_window_visitor_recent", exposedAt: now - 2 * DAY, counted: true },
      { id: "v_window_visitor_old", exposedAt: now - 10 * DAY, counted: false },
      { id: "v_window_visitor_later", exposedAt: now + DAY, counted: false },
    ];
    for (const c of cases) {
      const shard = experimentObject(env, experiment, c.id);
      await shard.expose([{ visitorId: c.id, variant: "control", at: c.exposedAt }]);
      const counted = await shard.convert(c.id, [{ goal: "purchase", at: now, value: 10, windowMs: week }]);
      expect({ id: c.id, counted: counted === 1 }).toEqual({ id: c.id, counted: c.counted });
    }
    const tallies = await Promise.all(
      Array.from({ length: SHARDS }, (_, shard) => experimentShard(env, experiment, shard).tally("purchase")),
    );
    expect(armCounts(mergeTallies(tallies), "purchase").get("control")).toMatchObject({
      visitors: 3,
      conversions: 1,
      value: { n: 3, sum: 10 },
    });
  });
});

describe("stitching across shards", () => {
  it("an anonymous visitor's exposure and value move to the person's shard once, however often identify retries", async () => {
    const experiment = "stitch-test";
    const ids = Array.from({ length: 64 }, (_, i) => `v_stitch_visitor_${i}`);
    const anon = ids[0]!;
    const person = ids.find((id) => shardOf(id) !== shardOf(anon))!;
    const shard = experimentObject(env, experiment, anon);
    await shard.expose([{ visitorId: anon, variant: "bold", at: 1000 }]);
    await shard.convert(anon, [{ goal: "revenue", at: 2000, value: 80, windowMs: Number.POSITIVE_INFINITY }]);
    expect(await rekeyVisitor(env, experiment, anon, person)).toBe(true);
    // A retried identify finds nothing left under the anonymous id.
    expect(await rekeyVisitor(env, experiment, anon, person)).toBe(false);
    expect(await personRows(env, experiment, [anon, person])).toEqual([
      {
        visitorId: person,
        variant: "bold",
        exposedAt: 1000,
        convertedAt: 2000,
        goals: { revenue: { firstAt: 2000, value: 80 } },
      },
    ]);
    // The person's next purchase finds the exposure in their own shard, and adds to the value.
    const more = await experimentObject(env, experiment, person).convert(person, [
      { goal: "revenue", at: 3000, value: 20, windowMs: Number.POSITIVE_INFINITY },
    ]);
    expect(more).toBe(1);
    expect((await personRows(env, experiment, [person]))[0]!.goals).toEqual({
      revenue: { firstAt: 2000, value: 100 },
    });
  });
});
