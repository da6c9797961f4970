import * as z from "zod";
import { type DecisionInput, decide, TIMEZONE_SOURCES } from "../core/decide.ts";
import type { RequestContext, VisitorEvent } from "../core/model.ts";
import { applyEvent, emptyState } from "../core/visitor-state.ts";
import type { CompiledRules } from "./compile.ts";
import { parseDuration } from "./duration.ts";

/**
 * Rule tests, as OPA has policy tests: a fixture is a person (traits, events, consent) on a page at
 * a time, and what the rules must decide for them. `npm run rules -- test` and the test suite run
 * the same files (rules/tests/*.json).
 */
export const FixtureSchema = z.strictObject({
  name: z.string(),
  visitorId: z.string().default("fixture-visitor"),
  now: z.string().describe("ISO time of the decision"),
  traits: z.record(z.string(), z.unknown()).default({}),
  consent: z.record(z.string(), z.boolean()).default({}),
  events: z
    .array(
      z.strictObject({
        type: z.string(),
        ago: z.string().describe('how long before `now`: "90s", "5m", "1d12h"'),
        channel: z.string().default("web"),
        props: z.record(z.string(), z.unknown()).default({}),
      }),
    )
    .default([]),
  context: z
    .strictObject({
      channel: z.string().default("web"),
      path: z.string().default("/"),
      query: z.record(z.string(), z.string()).default({}),
      timezone: z.string().optional(),
      country: z.string().optional(),
      device: z.enum(["mobile", "tablet", "desktop", "bot", "unknown"]).default("desktop"),
    })
    .default({ channel: "web", path: "/", query: {}, device: "desktop" }),
  placements: z.array(z.string()).optional(),
  expect: z.strictObject({
    decisions: z
      .record(z.string(), z.string().nullable())
      .optional()
      .describe("placement → experience id, or null for the default"),
    segments: z.array(z.string()).optional().describe("exactly these segments"),
    includesSegments: z.array(z.string()).optional(),
    topIntent: z.string().nullable().optional(),
    html: z
      .record(z.string(), z.string())
      .optional()
      .describe("placement → text the rendered fragment contains"),
    reasons: z
      .record(
        z.string(),
        z.enum(["FORCED", "TARGET_MATCH", "EXPERIMENT", "HOLDOUT", "DEFAULT", "FALLTHROUGH", "EXCLUDED"]),
      )
      .optional()
      .describe("placement → why it was decided so"),
    json: z
      .record(z.string(), z.record(z.string(), z.unknown()))
      .optional()
      .describe("placement → fields the JSON payload has (apps, messages)"),
    items: z
      .record(z.string(), z.array(z.string()))
      .optional()
      .describe("placement → the ids of its ranked list, in order (exactly these)"),
    outbound: z
      .strictObject({
        channel: z.string().nullable().optional(),
        hour: z.number().int().min(0).max(23).nullable().optional(),
        timezone: z.string().optional(),
        timezoneSource: z.enum(TIMEZONE_SOURCES).optional(),
      })
      .optional()
      .describe("outbound channels (context.channel email, sms, push): the fields the timing answer has"),
  }),
});
export type Fixture = z.infer<typeof FixtureSchema>;

export const FixtureFileSchema = z.strictObject({
  $schema: z.string().optional(),
  cases: z.array(FixtureSchema),
});

export type FixtureInput = DecisionInput;

/**
 * The decision input a fixture describes, or what is wrong with the fixture itself: a `now` that is
 * not a time or an `ago` that is not a duration would otherwise become NaN or 0 and make the case
 * pass or fail for a reason nobody wrote.
 */
export function fixtureInput(
  rules: CompiledRules,
  fixture: Fixture,
): { ok: true; input: FixtureInput } | { ok: false; errors: string[] } {
  const errors: string[] = [];
  const now = Date.parse(fixture.now);
  if (!Number.isFinite(now)) errors.push(`now ${JSON.stringify(fixture.now)} is not an ISO time`);
  const agoMs = fixture.events.map((event, i) => {
    const ms = parseDuration(event.ago);
    if (ms === null)
      errors.push(
        `events[${i}].ago ${JSON.stringify(event.ago)} is not a duration such as "90s", "5m" or "1d12h"`,
      );
    return ms ?? 0;
  });
  if (errors.length)
    return { ok: false, errors: errors.map((error) => `fixture "${fixture.name}": ${error}`) };
  return {
    ok: true,
    input: {
      visitorId: fixture.visitorId,
      now,
      traits: fixture.traits,
      state: fixture.events.length ? fixtureState(rules, fixture, now, agoMs) : null,
      context: fixtureContext(fixture),
      consent: fixture.consent,
      placements: fixture.placements,
    },
  };
}

/** The visitor's state after the fixture's events, applied oldest first as the visitor's object would. */
function fixtureState(rules: CompiledRules, fixture: Fixture, now: number, agoMs: readonly number[]) {
  const state = emptyState(fixture.visitorId);
  const events = fixture.events
    .map(
      (event, i): VisitorEvent => ({
        id: `e${i}`,
        type: event.type,
        ts: now - agoMs[i]!,
        channel: event.channel,
        props: event.props,
      }),
    )
    .sort((a, b) => a.ts - b.ts);
  for (const event of events) applyEvent(state, event, rules);
  return state;
}

function fixtureContext(fixture: Fixture): RequestContext {
  return {
    channel: fixture.context.channel,
    url: `https://shop.example${fixture.context.path}`,
    path: fixture.context.path,
    query: fixture.context.query,
    referrer: null,
    geo: {
      country: fixture.context.country ?? null,
      region: null,
      city: null,
      timezone: fixture.context.timezone ?? null,
    },
    device: fixture.context.device,
    locale: null,
    userAgent: null,
    custom: {},
  };
}

/** What the rules got wrong for this case (empty when it passes), or what is wrong with the case. */
export function runFixture(rules: CompiledRules, fixture: Fixture): string[] {
  const input = fixtureInput(rules, fixture);
  if (!input.ok) return input.errors;
  const result = decide(rules, input.input);
  const failures: string[] = [];
  const byPlacement = new Map(result.decisions.map((decision) => [decision.placement, decision]));
  for (const [placement, want] of Object.entries(fixture.expect.decisions ?? {})) {
    const got = byPlacement.get(placement);
    if (!got)
      failures.push(`${placement}: not decided (does the placement apply to ${fixture.context.path}?)`);
    else if (got.experience !== want)
      failures.push(
        `${placement}: expected ${want ?? "the default"}, got ${got.experience ?? "the default"} (${got.reason})`,
      );
  }
  for (const [placement, text] of Object.entries(fixture.expect.html ?? {})) {
    const got = byPlacement.get(placement)?.html ?? "";
    if (!got.includes(text))
      failures.push(`${placement}: fragment does not contain ${JSON.stringify(text)}: ${got}`);
  }
  for (const [placement, reason] of Object.entries(fixture.expect.reasons ?? {})) {
    const got = byPlacement.get(placement)?.reason;
    if (got !== reason) failures.push(`${placement}: expected reason ${reason}, got ${got ?? "no decision"}`);
  }
  for (const [placement, fields] of Object.entries(fixture.expect.json ?? {})) {
    const got = byPlacement.get(placement)?.json;
    for (const [key, want] of Object.entries(fields)) {
      const have = got && typeof got === "object" ? (got as Record<string, unknown>)[key] : undefined;
      if (JSON.stringify(have) !== JSON.stringify(want))
        failures.push(
          `${placement}: json.${key} expected ${JSON.stringify(want)}, got ${JSON.stringify(have)}`,
        );
    }
  }
  for (const [placement, want] of Object.entries(fixture.expect.items ?? {})) {
    const got = byPlacement.get(placement)?.items?.map((item) => item.id) ?? null;
    if (JSON.stringify(got) !== JSON.stringify(want))
      failures.push(
        `${placement}: items expected [${want.join(", ")}], got ${got ? `[${got.join(", ")}]` : "no list"}`,
      );
  }
  if (fixture.expect.segments) {
    const want = [...fixture.expect.segments].sort().join(",");
    const got = [...result.segments].sort().join(",");
    if (want !== got) failures.push(`segments: expected [${want}], got [${got}]`);
  }
  for (const segment of fixture.expect.includesSegments ?? []) {
    if (!result.segments.includes(segment))
      failures.push(`segments: expected to include ${segment}, got [${result.segments.join(",")}]`);
  }
  for (const [key, want] of Object.entries(fixture.expect.outbound ?? {})) {
    const have = result.outbound ? result.outbound[key as keyof typeof result.outbound] : undefined;
    if (have !== want)
      failures.push(`outbound.${key}: expected ${JSON.stringify(want)}, got ${JSON.stringify(have)}`);
  }
  if (fixture.expect.topIntent !== undefined && result.intent.top !== fixture.expect.topIntent) {
    failures.push(`top intent: expected ${fixture.expect.topIntent}, got ${result.intent.top}`);
  }
  return failures;
}
