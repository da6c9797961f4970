/**
 * The decision engine's shared workload (issue 17): 20 placements with 10 experiences each at 200
 * rules (1 and 100 each at 20 and 2,000), every experience with an audience, 10 named segments, 8
 * intent dimensions decayed by a 7-day half-life, and visitors with 500-event histories. Shared by
 * bench/decide.bench.ts, bench/rules.bench.ts and the hand-written reference
 * (bench/reference-decider.ts), which is written for exactly these rules.
 */

import { seededRandom } from "../scripts/seeded-random.ts";
import type { RequestContext, Traits, VisitorEvent, VisitorState } from "../src/core/model.ts";
import { applyEvent, emptyState, recordExposure, type Scoring } from "../src/core/visitor-state.ts";

export const NOW = Date.parse("2026-11-22T12:00:00Z");
export const TYPES = ["page_view", "product_view", "add_to_cart", "search", "email_open", "purchase"];
/** The 8 intent dimensions, also the events' categories and tags. */
export const CATEGORIES = ["running", "hiking", "trail", "camp", "climbing", "cycling", "swim", "ski"];
export const PLACEMENTS = 20;
export const SEGMENTS = 10;
const MINUTE = 60e3;

/** Experience `i`'s audience is kind `i % 5` (the five shapes below); its placement is `i % 20`. */
export function scaledDoc(experienceCount = 200) {
  const placements: Record<string, unknown> = {};
  for (let p = 0; p < PLACEMENTS; p++) placements[`slot-${p}`] = { selector: `#slot-${p}`, pages: ["*"] };
  const experiences = [];
  for (let i = 0; i < experienceCount; i++) {
    const cat = CATEGORIES[i % CATEGORIES.length]!;
    const audiences = [
      {
        all: [
          { op: "eq", path: "traits.tier", value: i % 3 === 0 ? "gold" : "silver" },
          { intent: { dimension: cat, above: i % 7 } },
        ],
      },
      {
        countWithin: { event: TYPES[i % TYPES.length]!, window: `${1 + (i % 14)}d` },
        op: "gte",
        value: 3 + (i % 20),
      },
      { silence: { after: "add_to_cart", without: ["purchase"], for: `${5 + i}m` } },
      {
        any: [
          { op: "in", path: "context.query.utm_campaign", value: [`c${i}`, `c${i + 1}`] },
          { op: "gte", path: "traits.lifetimeValue", value: 100 * i },
        ],
      },
      { segment: `seg-${i % SEGMENTS}` },
    ];
    experiences.push({
      id: `x-${i}`,
      placement: `slot-${i % PLACEMENTS}`,
      priority: 200 - i,
      audience: audiences[i % audiences.length],
      caps: i % 4 === 0 ? [{ max: 3, per: "1d" }] : [],
      content: {
        html: `<div class="x${i}">Hello {{ traits.firstName | default: "there" }}, offer ${i}</div>`,
      },
    });
  }
  const segments: Record<string, unknown> = {};
  for (let s = 0; s < SEGMENTS; s++) {
    segments[`seg-${s}`] = {
      condition: {
        all: [
          {
            countWithin: {
              event: "product_view",
              window: "7d",
              where: { path: "event.props.category", op: "eq", value: CATEGORIES[s % CATEGORIES.length] },
            },
            op: "gte",
            value: s,
          },
          { op: "exists", path: "traits.firstName" },
        ],
      },
    };
  }
  const dimensions = Object.fromEntries(CATEGORIES.map((c) => [c, { halfLife: "7d", cap: 100 }]));
  const signals = CATEGORIES.map((c) => ({
    id: `sig-${c}`,
    event: "product_view",
    when: { op: "eq", path: "event.props.category", value: c },
    add: { [c]: 2 },
  }));
  return { version: "bench", dimensions, signals, segments, placements, experiences };
}

/** One fixed visitor's 500 events, one every 40 minutes, types and categories in turn. */
export function history(rules: Scoring) {
  const s = emptyState("bench-visitor");
  for (let i = 0; i < 500; i++) {
    const e: VisitorEvent = {
      id: `e${i}`,
      type: TYPES[i % TYPES.length]!,
      ts: NOW - (500 - i) * 40 * MINUTE,
      channel: "web",
      props: {
        category: CATEGORIES[i % CATEGORIES.length],
        path: `/p/${i}`,
        tags: [CATEGORIES[i % CATEGORIES.length]!, "x"],
      },
    };
    applyEvent(s, e, rules);
  }
  return s;
}

export const benchContext: RequestContext = {
  channel: "web",
  url: "https://shop.example/running?utm_campaign=c7",
  path: "/running",
  query: { utm_campaign: "c7" },
  referrer: null,
  geo: { country: "FR", region: null, city: null, timezone: "Europe/Paris" },
  device: "desktop",
  locale: "fr-FR",
  userAgent: null,
  custom: {},
};

/** What one decision is handed: the same for the engine and the reference. */
export interface BenchVisitor {
  readonly visitorId: string;
  readonly traits: Traits;
  readonly state: VisitorState;
  readonly context: RequestContext;
}

const NAMES = ["Ana", "Zoë", "O'Brien", "Li <3", "", "Karim", "Émile & Co"];
const TIERS = ["gold", "silver", "bronze"];

/**
 * `count` visitors, each with 500 events applied by the engine's own ingest: a favourite category,
 * its own mix of event types and pace (the log spans about 2 to 28 days), a recent cart for some,
 * exposures to some capped experiences in the last day; varied traits (tier, first name with or
 * without characters to escape, lifetime value as a number, a string or missing) and contexts.
 */
export function benchVisitors(rules: Scoring, count = 100): BenchVisitor[] {
  const visitors: BenchVisitor[] = [];
  for (let v = 0; v < count; v++) {
    const rnd = seededRandom(v + 1); // one generator per visitor: every run decides for the same visitors
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
    const visitorId = `visitor-${v}`;
    const state = emptyState(visitorId);
    const favourite = pick(CATEGORIES);
    const weights = TYPES.map(() => rnd() ** 2 + 0.02);
    const total = weights.reduce((a, b) => a + b, 0);
    const typeOf = () => {
      let r = rnd() * total;
      for (let k = 0; k < TYPES.length; k++) {
        r -= weights[k]!;
        if (r <= 0) return TYPES[k]!;
      }
      return TYPES[TYPES.length - 1]!;
    };
    const pace = (5 + rnd() * 75) * MINUTE;
    let ts = NOW - 500 * pace - rnd() * 30 * MINUTE;
    for (let i = 0; i < 500; i++) {
      ts += pace * (0.5 + rnd());
      if (ts >= NOW) ts = NOW - (500 - i) * 1000;
      const category = rnd() < 0.5 ? favourite : pick(CATEGORIES);
      const event: VisitorEvent = {
        id: `v${v}-e${i}`,
        type: typeOf(),
        ts: Math.floor(ts),
        channel: "web",
        props: { category, path: `/p/${i % 37}`, tags: [category, "x"] },
      };
      applyEvent(state, event, rules);
    }
    // A cart left a few minutes to hours ago, with no purchase after it, for one visitor in four.
    if (v % 4 === 1) {
      const at = NOW - Math.floor(rnd() * 400) * MINUTE - MINUTE;
      applyEvent(
        state,
        { id: `v${v}-cart`, type: "add_to_cart", ts: at, channel: "web", props: { category: favourite } },
        rules,
      );
    }
    for (let p = 0; p < PLACEMENTS; p += 4) {
      if (rnd() < 0.4) {
        const shown = Math.floor(rnd() * 5);
        for (let k = 0; k < shown; k++)
          recordExposure(state, `x-${p}`, NOW - Math.floor(rnd() * 30) * 3600e3);
      }
    }
    const traits: Record<string, unknown> = {};
    if (v % 7 !== 6) traits.tier = pick(TIERS);
    if (v % 5 !== 4) traits.firstName = pick(NAMES);
    const ltv = rnd();
    if (ltv < 0.7) traits.lifetimeValue = Math.floor(rnd() * 25_000);
    else if (ltv < 0.8) traits.lifetimeValue = "900";
    const campaign = rnd() < 0.6 ? `c${Math.floor(rnd() * 220)}` : null;
    const context: RequestContext = {
      ...benchContext,
      url: `https://shop.example/${favourite}${campaign ? `?utm_campaign=${campaign}` : ""}`,
      path: `/${favourite}`,
      query: campaign ? { utm_campaign: campaign } : {},
    };
    visitors.push({ visitorId, traits, state, context });
  }
  return visitors;
}
