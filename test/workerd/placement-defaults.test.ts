import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { bucket } from "../../src/core/bucketing.ts";
import { ACTIVE_KEY } from "../../src/rules/store.ts";
import { resetRulesCache } from "../../src/state/rules-loader.ts";
import { idOf, newVisitor, publishDoc, visit } from "./helpers.ts";

/**
 * A visitor who matches nothing, or whom an experiment (or the whole program) holds out, sees the
 * placement's default on the page exactly as `POST /v1/decide` answers it to an app; only a
 * placement without a default keeps the origin's content.
 */

afterEach(async () => {
  await env.RULES.delete(ACTIVE_KEY);
  resetRulesCache();
});

/** A seed under which `visitorId` falls in a holdout of `fraction` (bucketing is a pure hash). */
function seedHoldingOut(visitorId: string, fraction: number): string {
  for (let i = 0; ; i++) if (bucket(`seed-${i}:holdout`, visitorId) < fraction) return `seed-${i}`;
}

const HERO_DEFAULT = "Trail gear, <em>tested</em>";
const BANNER_DEFAULT = '<p class="banner">Free shipping over €50</p>';

/**
 * The origin's home page has `#hero h1` ("Default hero"), `#hero p` ("For everyone") and an empty
 * `#promo-banner`. The hero is an A/B test, the banner is for VIPs only, the tagline has no default.
 * The experiment is not the demo's `hero-test`: a visitor's first page (under the demo rules) may have
 * assigned them an arm of that one, and assignments are sticky.
 */
function rulesWithDefaults(version: string, experimentSeed: string, settings: Record<string, unknown> = {}) {
  return {
    version,
    settings,
    segments: { vip: { condition: { op: "gte", path: "traits.lifetimeValue", value: 1000 } } },
    placements: {
      hero: {
        selector: "#hero h1",
        action: "replace_content",
        pages: ["/"],
        default: { html: HERO_DEFAULT },
      },
      banner: {
        selector: "#promo-banner",
        action: "replace_content",
        pages: ["/"],
        default: { html: BANNER_DEFAULT },
      },
      tagline: { selector: "#hero p", action: "replace_content", pages: ["/"] },
    },
    experiences: [
      {
        id: "hero-ab",
        placement: "hero",
        experiment: "hero-copy",
        variants: { control: { html: "Control hero" }, bold: { html: "Bold hero" } },
      },
      { id: "vip-banner", placement: "banner", audience: { segment: "vip" }, content: { html: "VIP" } },
      { id: "vip-tagline", placement: "tagline", audience: { segment: "vip" }, content: { html: "VIP" } },
    ],
    experiments: {
      "hero-copy": {
        seed: experimentSeed,
        variants: [
          { id: "control", weight: 50 },
          { id: "bold", weight: 50 },
        ],
        holdout: 0.1,
        goal: "add_to_cart",
        status: "running",
      },
    },
  };
}

type Decided = { reason: string; experience: string | null; content: { html: string | null } };

/** What the decide API answers this browser (its own cookie) for the page's placements. */
async function decidedFor(cookie: string): Promise<Record<string, Decided>> {
  const res = await visit("/_ns/v1/decide", {
    method: "POST",
    cookie,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ channel: "web", placements: ["hero", "banner", "tagline"] }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { decisions: Record<string, Decided> }).decisions;
}

async function homePage(cookie: string): Promise<string> {
  const res = await visit("/", { cookie });
  expect(res.status).toBe(200);
  return res.text();
}

/** The page and the API agree: each slot holds exactly the html the API returns for this visitor. */
async function expectPageShowsDecisions(
  cookie: string,
  reasons: { readonly hero: string; readonly banner: string },
): Promise<void> {
  const decisions = await decidedFor(cookie);
  expect(decisions.hero).toMatchObject({
    reason: reasons.hero,
    experience: null,
    content: { html: HERO_DEFAULT },
  });
  expect(decisions.banner).toMatchObject({
    reason: reasons.banner,
    experience: null,
    content: { html: BANNER_DEFAULT },
  });
  expect(decisions.tagline).toMatchObject({ experience: null, content: { html: null } });
  const html = await homePage(cookie);
  expect(html).toContain(`<h1>${decisions.hero!.content.html}</h1>`);
  expect(html).toContain(`<div id="promo-banner">${decisions.banner!.content.html}</div>`);
  expect(html).not.toContain("Default hero");
  // No default: the origin's own tagline stays.
  expect(html).toContain("<p>For everyone</p>");
}

describe("placement defaults on the page", () => {
  it("a visitor held out of an experiment and matching no banner sees each default the API returns", async () => {
    const cookie = await newVisitor();
    await publishDoc(rulesWithDefaults("defaults-held-out", seedHoldingOut(idOf(cookie), 0.1)));
    await expectPageShowsDecisions(cookie, { hero: "HOLDOUT", banner: "DEFAULT" });
  });

  it("a visitor in the global holdout sees the defaults too", async () => {
    const cookie = await newVisitor();
    // An experiment seed that does not hold this visitor out: the program's holdout is what does.
    let experimentSeed = "arm-0";
    for (let i = 1; bucket(`${experimentSeed}:holdout`, idOf(cookie)) < 0.1; i++) experimentSeed = `arm-${i}`;
    await publishDoc(
      rulesWithDefaults("defaults-global", experimentSeed, {
        globalHoldout: { fraction: 0.5, seed: seedHoldingOut(idOf(cookie), 0.5), goal: "purchase" },
      }),
    );
    await expectPageShowsDecisions(cookie, { hero: "HOLDOUT", banner: "HOLDOUT" });
  });

  it("a visitor who refused personalization sees the defaults, which are not personal", async () => {
    const cookie = await newVisitor();
    const refused = await visit("/_ns/v1/consent", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ purposes: { personalization: false, measurement: false } }),
    });
    expect(refused.status).toBe(200);
    await publishDoc(rulesWithDefaults("defaults-refused", seedHoldingOut(idOf(cookie), 0.1)));
    await expectPageShowsDecisions(cookie, { hero: "HOLDOUT", banner: "DEFAULT" });
  });

  it("a visitor the experiment shows a variant sees the variant, not the default", async () => {
    const cookie = await newVisitor();
    let seed = "arm-0";
    for (let i = 1; bucket(`${seed}:holdout`, idOf(cookie)) < 0.1; i++) seed = `arm-${i}`;
    await publishDoc(rulesWithDefaults("defaults-in-arm", seed));
    const hero = (await decidedFor(cookie)).hero!;
    expect(hero.reason).toBe("EXPERIMENT");
    const html = await homePage(cookie);
    expect(html).toContain(`<h1>${hero.content.html}</h1>`);
    expect(html).not.toContain(HERO_DEFAULT);
  });
});
