import { describe, expect, it } from "vitest";
import { decide } from "../../src/core/decide.ts";
import type { VisitorState } from "../../src/core/model.ts";
import { compileTemplate, MAX_EACH, type TemplateScope } from "../../src/core/templates.ts";
import { parseRules } from "../../src/rules/index.ts";
import { compile, context, DAY, event, experienceWins, HOUR, MIN, NOW, stateOf } from "./helpers.ts";

/** Ranked lists (src/core/ranking.ts) and the template loop that renders them (src/core/templates.ts). */

const render = (src: string, scope: TemplateScope, mode: "html" | "json" | "text" = "html") => {
  const t = compileTemplate(src, mode);
  if (!t.ok) throw new Error(t.error);
  return t.template(scope);
};
const compileError = (src: string) => {
  const t = compileTemplate(src, "html");
  return t.ok ? null : t.error;
};

describe("the template loop {{#each}}", () => {
  it("repeats its body per element, reading item.* from the element and the rest from the scope", () => {
    const scope = { traits: { firstName: "Ana" }, items: [{ title: "Boot" }, { title: "Pack" }] };
    expect(
      render("<ul>{{#each items}}<li>{{ item.title }} for {{ traits.firstName }}</li>{{/each}}</ul>", scope),
    ).toBe("<ul><li>Boot for Ana</li><li>Pack for Ana</li></ul>");
  });

  it("escapes every value it writes, in html and json modes", () => {
    const scope = { items: [{ title: '<img src=x onerror="alert(1)">' }] };
    expect(render("{{#each items}}<b>{{ item.title }}</b>{{/each}}", scope)).toBe(
      "<b>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</b>",
    );
    expect(render('{{#each items}}"{{ item.title }}"{{/each}}', scope, "json")).toBe(
      '"\\u003cimg src=x onerror=\\"alert(1)\\"\\u003e"',
    );
  });

  it("applies filters and defaults inside the loop", () => {
    const scope = { items: [{ title: "trail runner", price: 1299 }, { price: 5 }] };
    expect(
      render(
        '{{#each items}}[{{ item.title | default: "?" | upcase }} {{ item.price | number: 2 }}]{{/each}}',
        scope,
      ),
    ).toBe("[TRAIL RUNNER 1,299.00][? 5.00]");
  });

  it(`stops after ${MAX_EACH} elements however long the list`, () => {
    const items = Array.from({ length: MAX_EACH + 25 }, (_, i) => ({ n: i }));
    const out = render("{{#each items}}x{{/each}}", { items });
    expect(out).toBe("x".repeat(MAX_EACH));
  });

  it("renders nothing for a missing list or a value that is not a list", () => {
    expect(render("a{{#each items}}x{{/each}}b", {})).toBe("ab");
    expect(render("a{{#each traits.name}}x{{/each}}b", { traits: { name: "Ana" } })).toBe("ab");
  });

  it("refuses nested, unclosed and unopened loops", () => {
    expect(compileError("{{#each items}}{{#each items}}x{{/each}}{{/each}}")).toMatch(/cannot be nested/);
    expect(compileError("{{#each items}}x")).toMatch(/not closed/);
    expect(compileError("x{{/each}}")).toMatch(/closes no/);
    expect(compileError("{{#each __proto__}}x{{/each}}")).toMatch(/reserved/);
  });

  it("outside a loop, item.* is an ordinary path", () => {
    expect(render('{{ item.title | default: "none" }}', {})).toBe("none");
  });
});

const LIST = {
  items: [
    {
      id: "road-racer",
      category: "running",
      tags: ["running", "road"],
      title: "Road Racer",
      url: "/running/road-racer",
    },
    {
      id: "alpine-boot",
      category: "hiking",
      tags: ["hiking", "boots"],
      title: "Alpine Boot",
      url: "/hiking/alpine-boot",
    },
    {
      id: "trail-runner",
      category: "running",
      tags: ["running", "trail"],
      title: "Trail Runner",
      url: "/running/trail-runner",
    },
    {
      id: "ridge-pack",
      category: "hiking",
      tags: ["hiking", "packs"],
      title: "Ridge Pack",
      url: "/hiking/ridge-pack",
    },
    {
      id: "members-shell",
      category: "hiking",
      tags: ["hiking"],
      title: "Members' Shell",
      audience: { op: "eq", path: "traits.tier", value: "gold" },
    },
  ],
};

function doc(items: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    version: "t",
    ...extra,
    placements: { shelf: { selector: "#shelf" } },
    lists: { gear: LIST },
    experiences: [
      {
        id: "ranked",
        placement: "shelf",
        content: {
          items: { from: "gear", ...items },
          html: "<ol>{{#each items}}<li>{{ item.title }}</li>{{/each}}</ol>",
          json: { products: "{{ items }}" },
        },
      },
    ],
  };
}

async function shelf(
  items: Record<string, unknown>,
  state: VisitorState | null,
  options: {
    traits?: Record<string, unknown>;
    extra?: Record<string, unknown>;
    consent?: Record<string, boolean>;
  } = {},
) {
  const rules = await compile(doc(items, options.extra));
  const result = decide(rules, {
    visitorId: "v1",
    now: NOW,
    traits: options.traits ?? {},
    state,
    context: context(),
    consent: options.consent ?? {},
  });
  return result.decisions[0]!;
}

const ids = (decision: { items: ReadonlyArray<{ id: string }> | null }) => decision.items?.map((i) => i.id);

describe("ranked lists", () => {
  const hiker = stateOf([
    event("product_view", 2 * HOUR, { tags: ["hiking", "boots"], category: "hiking" }),
    event("page_view", HOUR, { tags: ["hiking"], category: "hiking" }),
    event("product_view", 30 * MIN, { tags: ["running", "trail"], category: "running" }),
  ]);

  it("orders items by the visitor's tag affinity; ties keep the list's order", async () => {
    const decision = await shelf({ top: 4 }, hiker);
    // alpine-boot: hiking 2 + boots 1; trail-runner: running 1 + trail 1; ridge-pack: hiking 2 (declared
    // after trail-runner); road-racer: running 1.
    expect(ids(decision)).toEqual(["alpine-boot", "trail-runner", "ridge-pack", "road-racer"]);
    expect(decision.items?.map((item) => item.score)).toEqual([3, 2, 2, 1]);
    expect(decision.items?.map((item) => item.rank)).toEqual([1, 2, 3, 4]);
    expect(decision.html).toBe(
      "<ol><li>Alpine Boot</li><li>Trail Runner</li><li>Ridge Pack</li><li>Road Racer</li></ol>",
    );
  });

  it("gives two visitors their own order, and a visitor with no history the list's own", async () => {
    const runner = stateOf([
      event("product_view", HOUR, { tags: ["running", "road"], category: "running" }),
      event("product_view", MIN, { tags: ["running"], category: "running" }),
    ]);
    expect(ids(await shelf({ top: 3 }, runner))).toEqual(["road-racer", "trail-runner", "alpine-boot"]);
    expect(ids(await shelf({ top: 3 }, hiker))).toEqual(["alpine-boot", "trail-runner", "ridge-pack"]);
    expect(ids(await shelf({ top: 3 }, null))).toEqual(["road-racer", "alpine-boot", "trail-runner"]);
  });

  it("puts the category browsed last first with lastCategoryFirst", async () => {
    // The hiker's latest event was a running product: running items first, then by affinity.
    expect(ids(await shelf({ top: 3, lastCategoryFirst: true }, hiker))).toEqual([
      "trail-runner",
      "road-racer",
      "alpine-boot",
    ]);
  });

  it("lists an item with an audience only for those it is for", async () => {
    expect(ids(await shelf({ top: 5 }, hiker))).not.toContain("members-shell");
    const gold = await shelf({ top: 5 }, hiker, { traits: { tier: "gold" } });
    expect(ids(gold)).toEqual(["alpine-boot", "trail-runner", "ridge-pack", "members-shell", "road-racer"]);
  });

  it("fades affinity with settings.affinity.halfLife: a recent interest outranks an old, larger one", async () => {
    const state = stateOf([
      event("product_view", 20 * DAY, { tags: ["hiking"] }),
      event("product_view", 20 * DAY, { tags: ["hiking"] }),
      event("product_view", 20 * DAY, { tags: ["hiking"] }),
      event("product_view", HOUR, { tags: ["running"] }),
    ]);
    const counted = await shelf({ top: 1 }, state);
    expect(ids(counted)).toEqual(["alpine-boot"]);
    const faded = await shelf({ top: 1 }, state, { extra: { settings: { affinity: { halfLife: "7d" } } } });
    expect(ids(faded)).toEqual(["road-racer"]);
  });

  it("counts what the visitor viewed, not what the brand sent them", async () => {
    const sentHiking = stateOf([
      event("email_send", HOUR, { tags: ["hiking", "boots"] }, "email"),
      event("email_send", HOUR, { tags: ["hiking", "boots"] }, "email"),
      event("product_view", MIN, { tags: ["running"] }),
    ]);
    expect(ids(await shelf({ top: 1 }, sentHiking))).toEqual(["road-racer"]);
  });

  it("answers the items in the JSON payload and the decision, with their own fields", async () => {
    const decision = await shelf({ top: 2 }, hiker);
    expect(decision.json).toEqual({ products: decision.items });
    expect(decision.items?.[0]).toEqual({
      id: "alpine-boot",
      category: "hiking",
      rank: 1,
      score: 3,
      title: "Alpine Boot",
      url: "/hiking/alpine-boot",
    });
  });

  it("without consent to personalize, ranks by the list's order alone", async () => {
    const decision = await shelf({ top: 2 }, hiker, { consent: { personalization: false } });
    expect(ids(decision)).toEqual(["road-racer", "alpine-boot"]);
  });

  it("makes affinity.top and visitor.lastCategory readable by any template", async () => {
    const rules = await compile({
      version: "t",
      placements: { hero: { selector: "#hero" } },
      experiences: [
        {
          id: "x",
          placement: "hero",
          content: { html: "{{ affinity.top }}/{{ visitor.lastCategory }}" },
        },
      ],
    });
    const decision = decide(rules, {
      visitorId: "v1",
      now: NOW,
      traits: {},
      state: hiker,
      context: context(),
      consent: {},
    }).decisions[0]!;
    expect(decision.html).toBe("hiking/running");
    expect(rules.eventHorizonMs).toBe(Number.POSITIVE_INFINITY);
  });

  it("the affinity condition reads the same faded affinity: with a half-life, a recent tag is the strongest", async () => {
    const state = stateOf([
      event("product_view", 20 * DAY, { tags: ["hiking"] }),
      event("product_view", 20 * DAY, { tags: ["hiking"] }),
      event("product_view", 20 * DAY, { tags: ["hiking"] }),
      event("product_view", 2 * HOUR, { tags: ["running"] }),
      event("product_view", HOUR, { tags: ["running"] }),
    ]);
    const runningFan = (settings: Record<string, unknown>) => ({
      version: "t",
      settings,
      placements: { p: { selector: "#p" } },
      experiences: [
        { id: "x", placement: "p", audience: { affinity: { tag: "running" } }, content: { html: "run" } },
      ],
    });
    expect(await experienceWins(runningFan({}), { state })).toBe(false);
    expect(await experienceWins(runningFan({ affinity: { halfLife: "7d" } }), { state })).toBe(true);
  });

  it("refuses a list that does not exist, duplicate items and fields the ranking fills in", () => {
    const bad = doc({ top: 2 });
    bad.experiences[0]!.content.items.from = "nope";
    bad.lists.gear = {
      items: [
        { id: "a", tags: [], title: "A", rank: 1 },
        { id: "a", tags: [], "bad name": "x" },
      ],
    } as unknown as typeof LIST;
    const parsed = parseRules(bad);
    expect(parsed.ok).toBe(false);
    const paths = parsed.ok ? [] : parsed.errors.map((error) => error.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "experiences[0].content.items.from",
        "lists.gear.items[1].id",
        "lists.gear.items[0].rank",
        "lists.gear.items[1].bad name",
      ]),
    );
  });
});
