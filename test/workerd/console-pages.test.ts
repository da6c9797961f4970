import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, describe, expect, it } from "vitest";
import bundledDocument from "../../rules/northstar.rules.json";
import { handleConsole } from "../../src/console/routes.ts";
import { newSession, SESSION_COOKIE, sealSession } from "../../src/console/session.ts";
import { handle } from "../../src/http/app.ts";
import { type ExperimentResults, ExperimentResultsSchema } from "../../src/http/experiment-results.ts";
import { countConversions, experimentObject, shardName } from "../../src/measure/experiment-object.ts";
import {
  ADMIN,
  HALVES,
  publishDoc,
  publishWithExperiment,
  publishWithGlobalHoldout,
  unpublishRules,
} from "./helpers.ts";

// The console's experiment and programme pages against the results route, over counters seeded
// through the experiment objects' real RPC: every number the page prints is the route's.

const DAY = 86_400_000;
const EXPERIMENT = "console-test";
const at = Date.now() - 3 * DAY;

async function session(): Promise<string> {
  const value = await sealSession(env.ADMIN_TOKEN as string, newSession(Math.floor(Date.now() / 1000)));
  return `${SESSION_COOKIE}=${value}`;
}

async function consolePage(path: string, bindings: typeof env = env): Promise<string> {
  const ctx = createExecutionContext();
  const res = await handleConsole(
    new Request(`https://shop.test/_ns/console${path}`, { headers: { cookie: await session() } }),
    bindings,
    ctx,
  );
  const text = await res.text();
  await waitOnExecutionContext(ctx);
  expect(res.status).toBe(200);
  return text;
}

async function results(id: string): Promise<ExperimentResults> {
  const ctx = createExecutionContext();
  const res = await handle(
    new Request(`https://shop.test/_ns/v1/experiments/${id}`, { headers: ADMIN }),
    env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  expect(res.status).toBe(200);
  // The route's answer parses with the schema the console reads it with.
  return ExperimentResultsSchema.parse(await res.json());
}

/** The section of one goal. */
function section(page: string, goal: string): string {
  const start = page.indexOf(`<section class="goal" data-goal="${goal}">`);
  expect(start).toBeGreaterThanOrEqual(0);
  return page.slice(start, page.indexOf("</section>", start));
}

/** Per arm, the numbers printed beside its bar in the chart of `kind`, by their span's class. */
function printed(part: string, kind: string): Map<string, Record<string, string>> {
  const svg = new RegExp(`<svg class="chart ${kind}"[\\s\\S]*?</svg>`).exec(part)?.[0] ?? "";
  const arms = new Map<string, Record<string, string>>();
  for (const g of svg.matchAll(/<g class="[^"]*" data-arm="([^"]+)">([\s\S]*?)<\/g>/g)) {
    arms.set(
      g[1]!,
      Object.fromEntries(
        [...g[2]!.matchAll(/<tspan class="(\w+)">([^<]*)<\/tspan>/g)].map((m) => [m[1], m[2]]),
      ),
    );
  }
  return arms;
}

/** "12.3%" or "+12.3%" as 0.123; "4.50" as 4.5. */
const percent = (s: string | undefined) => Number(s!.replace("%", "")) / 100;
const plain = (s: string | undefined) => Number(s);
/** Half of the last printed digit (a tenth of a percent, a cent), and a little for binary rounding. */
const PERCENT = 0.0005 + 1e-9;
const CENT = 0.005 + 1e-9;

afterAll(unpublishRules);

describe("the experiment page shows the results route's numbers", () => {
  it("per goal: rate and uplift with their intervals, value per visitor and its uplift, visitors per day", async () => {
    await publishWithExperiment("console-pages-1", EXPERIMENT, {
      seed: "console-test",
      variants: HALVES,
      holdout: 0.2,
      goal: "add_to_cart",
      goals: [{ id: "revenue", event: "purchase", value: "props.value", window: "7d" }],
    });
    // 200 visitors over two days: 80 control, 80 bold, 40 held out. Some add to cart (more under
    // bold), fewer buy, for amounts that vary (revenue is skewed).
    for (let i = 0; i < 200; i++) {
      const visitorId = `v_console_${i}`;
      const variant = i % 5 === 4 ? "holdout" : i % 5 < 2 ? "control" : "bold";
      const exposedAt = at + (i % 2) * DAY;
      await experimentObject(env, EXPERIMENT, visitorId).expose([{ visitorId, variant, at: exposedAt }]);
      const adds = i % (variant === "bold" ? 3 : 4) === 0;
      const buys = i % (variant === "bold" ? 6 : 8) === 0;
      const goal = (g: string, value: number) => ({
        experiment: EXPERIMENT,
        variant,
        goal: g,
        at: exposedAt + 1000,
        value,
        windowMs: g === "revenue" ? 7 * DAY : Number.POSITIVE_INFINITY,
      });
      const events = [
        ...(adds ? [goal("add_to_cart", 0)] : []),
        ...(buys ? [goal("revenue", 20 + (i % 7) * 15)] : []),
      ];
      if (events.length > 0) await countConversions(env, visitorId, events);
    }

    const api = await results(EXPERIMENT);
    const page = await consolePage(`/experiments/${EXPERIMENT}`);
    expect(api.goals.map((g) => g.id)).toEqual(["add_to_cart", "revenue"]);
    expect(page).toContain('<span class="ok" id="srm">Sample ratio OK</span>');
    expect(page).not.toContain("shards-missing");

    for (const goal of api.goals) {
      const part = section(page, goal.id);
      const rates = printed(part, "rates");
      const rateUplift = printed(part, "rate-uplift");
      expect([...rates.keys()]).toEqual(["control", "bold", "holdout"]);
      for (const arm of goal.report.arms) {
        const shown = rates.get(arm.id)!;
        expect({
          arm: arm.id,
          conversions: Number(shown.conversions),
          visitors: Number(shown.exposures),
        }).toEqual({
          arm: arm.id,
          conversions: arm.conversions,
          visitors: arm.visitors,
        });
        // Printed to one decimal of a percent: equal to the route's within half of that.
        expect(Math.abs(percent(shown.rate) - arm.rate)).toBeLessThanOrEqual(PERCENT);
        expect(Math.abs(percent(shown.lo) - arm.interval[0])).toBeLessThanOrEqual(PERCENT);
        expect(Math.abs(percent(shown.hi) - arm.interval[1])).toBeLessThanOrEqual(PERCENT);
        if (arm.isControl) expect(rateUplift.has(arm.id)).toBe(false);
        else {
          const u = rateUplift.get(arm.id)!;
          expect(Math.abs(percent(u.mid) - arm.uplift!.relative!)).toBeLessThanOrEqual(PERCENT);
          expect(Math.abs(percent(u.lo) - arm.uplift!.relativeInterval![0])).toBeLessThanOrEqual(PERCENT);
          expect(Math.abs(percent(u.hi) - arm.uplift!.relativeInterval![1])).toBeLessThanOrEqual(PERCENT);
        }
      }
    }

    // Only the goal with a value has its value charts, and they name their method.
    expect(section(page, "add_to_cart")).not.toContain("chart values");
    const revenue = section(page, "revenue");
    expect(revenue).toContain("Welch's t interval");
    expect(revenue).toContain("delta method");
    const values = printed(revenue, "values");
    const valueUplift = printed(revenue, "value-uplift");
    for (const arm of api.goals[1]!.report.arms) {
      const shown = values.get(arm.id)!;
      expect(Math.abs(plain(shown.mean) - arm.value.mean)).toBeLessThanOrEqual(CENT);
      expect(Math.abs(plain(shown.lo) - arm.value.interval![0])).toBeLessThanOrEqual(CENT);
      expect(Math.abs(plain(shown.hi) - arm.value.interval![1])).toBeLessThanOrEqual(CENT);
      if (arm.isControl) continue;
      const u = valueUplift.get(arm.id)!;
      expect(Math.abs(percent(u.mid) - arm.valueUplift!.relative!)).toBeLessThanOrEqual(PERCENT);
      expect(Math.abs(percent(u.lo) - arm.valueUplift!.relativeInterval![0])).toBeLessThanOrEqual(PERCENT);
      expect(Math.abs(percent(u.hi) - arm.valueUplift!.relativeInterval![1])).toBeLessThanOrEqual(PERCENT);
    }

    // Visitors over time: a point per arm and day, with the route's daily count.
    expect(api.daily).toHaveLength(6);
    for (const day of api.daily)
      expect(page).toContain(`<title>${day.variant} ${day.date}: ${day.visitors}</title>`);
  });

  it("names the counter shards that did not answer, whose visitors are not counted", async () => {
    const silentId = env.EXPERIMENTS.idFromName(shardName(EXPERIMENT, 5));
    const experiments = {
      idFromName: (name: string) => env.EXPERIMENTS.idFromName(name),
      get: (id: DurableObjectId) =>
        id.equals(silentId)
          ? { tally: () => Promise.reject(new Error("injected: shard unavailable")) }
          : env.EXPERIMENTS.get(id),
    };
    const page = await consolePage(`/experiments/${EXPERIMENT}`, {
      ...env,
      EXPERIMENTS: experiments,
    } as unknown as typeof env);
    expect(page).toMatch(/id="shards-missing">1 of 16 counter shards did not answer in time \(5\)/);
  });
});

describe("the programme lift page", () => {
  it("says so when the rules set no global holdout", async () => {
    await publishDoc({ ...bundledDocument, version: "console-pages-2" });
    const page = await consolePage("/programme");
    expect(page).toContain('id="no-holdout"');
    expect(page).toContain("globalHoldout");
  });

  it("per goal and ISO week: held out against personalized with the route's uplift interval", async () => {
    await publishWithGlobalHoldout("console-pages-3", {
      fraction: 0.5,
      seed: "console-programme",
      goal: "purchase",
      goals: [{ id: "purchase", event: "purchase", value: "props.value" }],
    });
    // Two cohorts eight days apart, so two ISO weeks: 1 in 4 held-out visitors buys, 3 in 4 personalized.
    let n = 0;
    for (const exposedAt of [Date.now() - 10 * DAY, Date.now() - 2 * DAY])
      for (const group of ["holdout", "personalized"])
        for (let i = 0; i < 8; i++) {
          const visitorId = `v_console_programme_${++n}`;
          await experimentObject(env, "global-holdout", visitorId).expose([
            { visitorId, variant: group, at: exposedAt },
          ]);
          if (group === "holdout" ? i % 4 === 0 : i % 4 !== 0)
            await countConversions(env, visitorId, [
              {
                experiment: "global-holdout",
                variant: group,
                goal: "purchase",
                at: exposedAt + 1000,
                value: 30 + i * 10,
                windowMs: Number.POSITIVE_INFINITY,
              },
            ]);
        }

    const api = await results("global-holdout");
    const page = await consolePage("/programme");
    const overall = printed(section(page, "purchase"), "rates");
    expect([...overall.keys()]).toEqual(["holdout", "personalized"]);
    expect(api.weekly).toHaveLength(2);
    for (const { week, goals } of api.weekly) {
      const arms = goals[0]!.report.arms;
      const held = arms.find((a) => a.id === "holdout")!;
      const mine = arms.find((a) => a.id === "personalized")!;
      const row = new RegExp(`<tr data-week="${week}">([\\s\\S]*?)</tr>`).exec(page)?.[1] ?? "";
      const cells = [...row.matchAll(/<td>([\s\S]*?)<\/td>/g)].map((m) => m[1]!.trim());
      const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
      expect(cells).toEqual([
        week,
        `${pct(held.rate)} [${pct(held.interval[0])}, ${pct(held.interval[1])}] · ${held.conversions}/${held.visitors}`,
        `${pct(mine.rate)} [${pct(mine.interval[0])}, ${pct(mine.interval[1])}] · ${mine.conversions}/${mine.visitors}`,
        `${pct(mine.uplift!.relative!)} [${pct(mine.uplift!.relativeInterval![0])}, ${pct(mine.uplift!.relativeInterval![1])}]`,
        `${held.value.mean.toFixed(2)} → ${mine.value.mean.toFixed(2)}`,
        `${mine.valueUplift!.absolute.toFixed(2)} [${mine.valueUplift!.absoluteInterval[0].toFixed(2)}, ${mine.valueUplift!.absoluteInterval[1].toFixed(2)}]`,
      ]);
      expect([held.visitors, held.conversions, mine.visitors, mine.conversions]).toEqual([8, 2, 8, 6]);
    }
  });
});
