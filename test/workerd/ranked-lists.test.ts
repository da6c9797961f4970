import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { DecideResponse } from "../../src/client/index.ts";
import { ACTIVE_KEY } from "../../src/rules/store.ts";
import { resetRulesCache } from "../../src/state/rules-loader.ts";
import { eid, newVisitor, publishDoc, sendEvents, visit } from "./helpers.ts";

/**
 * A ranked list through the proxy: the page shows a visitor's shelf in their order, and the decision
 * API answers the same items in the same order (one decide(), two channels).
 */

afterEach(async () => {
  await env.RULES.delete(ACTIVE_KEY);
  resetRulesCache();
});

/** The test origin's home page has an empty `#recommendations`: the shelf goes there. */
function shelfRules(version: string) {
  return {
    version,
    settings: { affinity: { halfLife: "7d" } },
    placements: { shelf: { selector: "#recommendations", action: "replace_content", pages: ["/"] } },
    lists: {
      gear: {
        items: [
          { id: "road-racer", category: "running", tags: ["running", "road"], title: "Road Racer" },
          { id: "alpine-boot", category: "hiking", tags: ["hiking", "boots"], title: "Alpine Boot" },
          { id: "tempo-tee", category: "running", tags: ["running", "apparel"], title: "Tempo Tee" },
          { id: "wool-socks", category: "hiking", tags: ["hiking"], title: "Socks & <Liners>" },
        ],
      },
    },
    experiences: [
      {
        id: "for-you",
        placement: "shelf",
        content: {
          items: { from: "gear", top: 3 },
          html: '<ol class="shelf">{{#each items}}<li data-id="{{ item.id }}">{{ item.title }}</li>{{/each}}</ol>',
        },
      },
    ],
  };
}

/** The items the page shows, in page order. */
function shelfOnPage(html: string): string[] {
  const shelf = /<ol class="shelf">(.*?)<\/ol>/.exec(html)?.[1] ?? "";
  return [...shelf.matchAll(/data-id="([^"]+)"/g)].map((match) => match[1]!);
}

/** The visitor (by their cookie) browses products with these tags, then asks for the home page and the API. */
async function shelfFor(tags: string[][]): Promise<{ page: string; api: DecideResponse }> {
  const cookie = await newVisitor();
  const sent = await sendEvents(
    cookie,
    tags.map((productTags) => ({ id: eid(), type: "product_view", props: { tags: productTags } })),
  );
  expect(sent.status).toBe(202);
  const page = await (await visit("/", { cookie })).text();
  const res = await visit("/_ns/v1/decide", {
    method: "POST",
    cookie,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ channel: "web", placements: ["shelf"] }),
  });
  expect(res.status).toBe(200);
  return { page, api: (await res.json()) as DecideResponse };
}

describe("a ranked list on the page and in the decision API", () => {
  it("shows each visitor the shelf in their own order, and the API answers the same items in that order", async () => {
    await publishDoc(shelfRules(`ranked-${Date.now()}`));

    const hiker = await shelfFor([["hiking", "boots"], ["hiking"]]);
    expect(shelfOnPage(hiker.page)).toEqual(["alpine-boot", "wool-socks", "road-racer"]);
    expect(hiker.api.decisions.shelf?.content.items?.map((item) => item.id)).toEqual(shelfOnPage(hiker.page));
    expect(hiker.api.decisions.shelf?.content.items?.[1]).toMatchObject({
      rank: 2,
      title: "Socks & <Liners>",
      category: "hiking",
    });
    // The item's own text is escaped on the page like any value.
    expect(hiker.page).toContain('<li data-id="wool-socks">Socks &amp; &lt;Liners&gt;</li>');

    const runner = await shelfFor([["running", "apparel"], ["running"]]);
    expect(shelfOnPage(runner.page)).toEqual(["tempo-tee", "road-racer", "alpine-boot"]);
    expect(runner.api.decisions.shelf?.content.items?.map((item) => item.id)).toEqual(
      shelfOnPage(runner.page),
    );
  });
});
