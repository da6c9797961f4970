// Which tables a visitor's object holds (docs/storage.md; docs/decisions.md, record 24): a new
// visitor's object holds only the tables it writes, and the dead-letter, outbox, journey and message
// tables are created by their first write, after which everything reads back as it always did.
import { introspectWorkflow, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import bundledDocument from "../../rules/northstar.rules.json";
import type { VisitorDO } from "../../src/state/visitor-do.ts";
import { canonicalForUser } from "../../src/state/visitor-id.ts";
import {
  ADMIN,
  eid,
  idOf,
  newVisitor,
  publishDoc,
  sendEvents,
  unpublishRules,
  visit,
  writeHeldViews,
} from "./helpers.ts";

function rules(): Record<string, unknown> {
  // biome-ignore lint/suspicious/noExplicitAny: the test edits arbitrary parts of a JSON document
  const doc = structuredClone(bundledDocument) as any;
  doc.version = "visitor-tables-test-1";
  // Entered when a CRM import makes the person gold: one email at once.
  doc.journeys["vip-welcome"] = {
    trigger: { condition: { op: "eq", path: "traits.tier", value: "gold" } },
    steps: [
      {
        id: "welcome",
        send: { via: [{ channel: "email", placement: "email-hero" }], bestHourWithin: "0s" },
      },
    ],
  };
  return doc;
}

beforeAll(async () => {
  await publishDoc(rules());
});
afterAll(unpublishRules);

const stubOf = (visitorId: string) => env.VISITOR.get(env.VISITOR.idFromName(visitorId));

/** The tables the visitor's object holds, by name (the platform's own `_cf_` tables left out). */
function tablesOf(visitorId: string): Promise<string[]> {
  return runInDurableObject(stubOf(visitorId), (_instance: VisitorDO, ctx) =>
    ctx.storage.sql
      .exec<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY name",
      )
      .toArray()
      .map((row) => row.name),
  );
}

async function profile(id: string) {
  const res = await visit(`/_ns/v1/profiles/${encodeURIComponent(id)}`, { headers: ADMIN });
  expect(res.status).toBe(200);
  return (await res.json()) as {
    state: { events: Array<{ type: string }> } | null;
    deadLetters: Array<{ reason: string }>;
    journeys: Array<{
      journey: string;
      status: string;
      messages: Array<{ step: string; channel: string | null; sent: { delivery: string | null } | null }>;
    }>;
  };
}

describe("a visitor object's tables", () => {
  it("a new visitor's object holds only its event and meta tables after its first page views", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    for (let page = 0; page < 2; page++) await (await visit("/", { cookie })).arrayBuffer();
    await writeHeldViews(visitorId);

    expect((await profile(visitorId)).state!.events.map((event) => event.type)).toEqual([
      "page_view",
      "page_view",
    ]);
    expect(await tablesOf(visitorId)).toEqual(["event", "meta"]);
  });

  it("the beacon's events add the export outbox (their lines are queued with them) and no other table", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    expect((await sendEvents(cookie, [{ id: eid(), type: "product_view", props: {} }])).status).toBe(202);

    expect(await tablesOf(visitorId)).toEqual(["event", "meta", "outbox"]);
    expect((await profile(visitorId)).state!.events.map((event) => event.type)).toEqual(["product_view"]);
  });

  it("a rejected event creates the dead-letter table, and the profile export reads it back", async () => {
    const cookie = await newVisitor();
    const visitorId = idOf(cookie);
    const res = await sendEvents(cookie, [{ id: eid(), type: "search", props: {} }, { type: "no_id" }]);
    expect(res.status).toBe(202);

    expect(await tablesOf(visitorId)).toContain("dead_letter");
    const exported = await profile(visitorId);
    expect(exported.deadLetters).toHaveLength(1);
    expect(exported.journeys).toEqual([]);
  });

  it("a journey that reaches a person creates the journey and message tables, and their export reads them back", async () => {
    await using introspector = await introspectWorkflow(env.JOURNEYS);
    await introspector.modifyAll(async (m) => {
      await m.disableSleeps();
    });
    const user = `visitor-tables-${eid()}@example.com`;
    const person = await canonicalForUser(user);
    const imported = await visit("/_ns/v1/profiles/import", {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/x-ndjson" },
      body: JSON.stringify({ id: `user:${user}`, traits: { tier: "gold" } }),
    });
    expect(await imported.json()).toEqual({ written: 1, errors: [] });
    const [instance] = await vi.waitFor(async () => {
      const started = await introspector.get();
      expect(started).toHaveLength(1);
      return started;
    });
    await instance!.waitForStatus("complete");

    // Delivered by the queue's consumer, which reports the outcome to the person's object.
    const exported = await vi.waitFor(
      async () => {
        const body = await profile(`user:${user}`);
        expect(body.journeys[0]?.messages[0]?.sent?.delivery).toBe("delivered");
        return body;
      },
      { timeout: 10_000 },
    );
    expect(exported.journeys).toMatchObject([
      { journey: "vip-welcome", status: "ended", messages: [{ step: "welcome", channel: "email" }] },
    ]);
    expect(await tablesOf(person)).toEqual(
      expect.arrayContaining(["journey_entry", "journey_log", "journey_message", "journey_send"]),
    );
    expect(await tablesOf(person)).not.toContain("dead_letter");
  });
});
