// Journeys and who the person is: triggers that read imported traits (a CRM import puts a person in a
// journey, once), a trait date that only time makes true (the object's alarm comes back for it), and
// an anonymous visitor's journey that goes on as the known person's after a login.
import { introspectWorkflow, introspectWorkflowInstance, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import bundledDocument from "../../rules/northstar.rules.json";
import type { JourneyOutcome } from "../../src/journeys/journey-workflow.ts";
import { instanceId } from "../../src/rules/journey-triggers.ts";
import { canonicalForUser } from "../../src/state/visitor-id.ts";
import { visitorObject } from "../../src/state/visitor-object.ts";
import {
  ADMIN,
  eid,
  idOf,
  newVisitor,
  publishDoc,
  SERVER,
  sendEvents,
  unpublishRules,
  visit,
} from "./helpers.ts";

const DAY = 86400e3;

function rules(): Record<string, unknown> {
  // biome-ignore lint/suspicious/noExplicitAny: the test edits arbitrary parts of a JSON document
  const doc = structuredClone(bundledDocument) as any;
  doc.version = "journeys-identity-test-1";
  const email = { via: [{ channel: "email", placement: "email-hero" }], bestHourWithin: "0s" };
  // Entered when a CRM import makes the person gold.
  doc.journeys["vip-welcome"] = {
    trigger: { condition: { op: "eq", path: "traits.tier", value: "gold" } },
    steps: [{ id: "welcome", send: email }],
  };
  // Entered when the CRM's last order date is 60 days old: only time makes it true.
  doc.journeys["lapsed-buyer-offer"] = {
    trigger: { segment: "lapsed-buyer" },
    steps: [{ id: "offer", send: email }],
  };
  return doc;
}

beforeAll(async () => {
  await publishDoc(rules());
});
afterAll(unpublishRules);

let users = 0;
const newUser = () => `journeys-identity-${Date.now()}-${++users}@example.com`;

function importTraits(lines: unknown[]): Promise<Response> {
  return visit("/_ns/v1/profiles/import", {
    method: "POST",
    headers: { ...ADMIN, "content-type": "application/x-ndjson" },
    body: lines.map((line) => JSON.stringify(line)).join("\n"),
  });
}

type Listed = {
  journeys: Array<{ instance: string; journey: string; status: string; reason: string; messages: unknown[] }>;
};
async function journeysOf(id: string): Promise<Listed["journeys"]> {
  const res = await visit(`/_ns/v1/profiles/${encodeURIComponent(id)}/journeys`, { headers: ADMIN });
  expect(res.status).toBe(200);
  return ((await res.json()) as Listed).journeys;
}

async function outboxOf(visitorIds: readonly string[]): Promise<unknown[]> {
  const res = await env.DESTINATION_SERVICE!.fetch("https://destination.test/outbox");
  const { messages } = (await res.json()) as { messages: Array<{ visitorId: string }> };
  return messages.filter((m) => visitorIds.includes(m.visitorId));
}

describe("triggers that read traits", () => {
  it("a CRM import that makes a person gold starts one VIP welcome; the same import again starts none", async () => {
    await using introspector = await introspectWorkflow(env.JOURNEYS);
    await introspector.modifyAll(async (m) => {
      await m.disableSleeps();
    });
    const user = newUser();
    const person = await canonicalForUser(user);
    const line = { id: `user:${user}`, traits: { tier: "gold", firstName: "Ana" } };

    expect(await (await importTraits([line])).json()).toEqual({ written: 1, errors: [] });
    const [instance] = await vi.waitFor(async () => {
      const started = await introspector.get();
      expect(started).toHaveLength(1);
      return started;
    });
    await instance!.waitForStatus("complete");
    expect(await instance!.getOutput()).toMatchObject({
      ended: "completed",
      sent: [{ step: "welcome", channel: "email" }],
    });

    expect(await (await importTraits([line])).json()).toEqual({ written: 1, errors: [] });
    expect(await journeysOf(`user:${user}`)).toMatchObject([{ journey: "vip-welcome", status: "ended" }]);
    expect(await introspector.get()).toHaveLength(1);
    // The one message, delivered by the queue's consumer.
    await vi.waitFor(async () => expect(await outboxOf([person])).toHaveLength(1), { timeout: 10_000 });
  });

  it("a person who refused marketing is not entered by an import that makes them gold", async () => {
    const user = newUser();
    const refused = await visit("/_ns/v1/consent", {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/json" },
      body: JSON.stringify({ userId: user, purposes: { marketing: false } }),
    });
    expect(refused.status).toBe(200);
    expect(await (await importTraits([{ id: `user:${user}`, traits: { tier: "gold" } }])).json()).toEqual({
      written: 1,
      errors: [],
    });
    // The import answers once the person's object has recorded any entry: none.
    expect(await journeysOf(`user:${user}`)).toEqual([]);
  });

  it("a last order that turns 60 days old two hours after the import: the object's alarm is set for then, and its check then starts the offer", async () => {
    const user = newUser();
    const person = await canonicalForUser(user);
    const now = Date.now();
    // 59 days and 22 hours ago: the lapsed-buyer segment holds in two hours, with no event in between.
    const lastOrderAt = new Date(now - 60 * DAY + 2 * 3600e3).toISOString();
    expect(await (await importTraits([{ id: `user:${user}`, traits: { lastOrderAt } }])).json()).toEqual({
      written: 1,
      errors: [],
    });
    expect(await journeysOf(`user:${user}`)).toEqual([]);

    const stub = env.VISITOR.get(env.VISITOR.idFromName(person));
    const alarm = await vi.waitFor(async () => {
      const at = await runInDurableObject(stub, (_object, state) => state.storage.getAlarm());
      expect(at).not.toBeNull();
      return at!;
    });
    expect(Math.abs(alarm - (Date.parse(lastOrderAt) + 60 * DAY))).toBeLessThan(5000);

    const due = alarm;
    await using instance = await introspectWorkflowInstance(
      env.JOURNEYS,
      instanceId("lapsed-buyer-offer", person, `state-${due}`),
    );
    await instance.modify(async (m) => {
      await m.disableSleeps();
    });
    // The alarm's check, at the time it was set for (the test's clock: alarms run on the real one).
    expect(await visitorObject(env, person).checkJourneyTriggers(due)).toHaveLength(1);
    await instance.waitForStatus("complete");
    expect(await instance.getOutput()).toMatchObject({ sent: [{ step: "offer" }] });
  });
});

describe("a journey follows the person at login", () => {
  it("a cart left anonymously, then a login: the person's journeys list it, their purchase ends it, nothing is sent", async () => {
    const cookie = await newVisitor();
    const anonymous = idOf(cookie);
    const cart = { id: eid(), type: "add_to_cart", props: { category: "running" } };
    const cartInstance = instanceId("cart-abandonment", anonymous, cart.id);
    await using instance = await introspectWorkflowInstance(env.JOURNEYS, cartInstance);
    await instance.modify(async (m) => {
      await m.disableSleeps();
    });
    expect((await sendEvents(cookie, [cart])).status).toBe(202);
    await instance.waitForStepResult({ name: "check 0 (start)" });

    const user = newUser();
    const person = await canonicalForUser(user);
    const linked = await visit("/_ns/v1/identify", {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/json" },
      body: JSON.stringify({ anonymousId: anonymous, userId: user }),
    });
    expect(await linked.json()).toMatchObject({ visitorId: person, merged: true, linked: true });
    expect(await journeysOf(`user:${user}`)).toMatchObject([
      { instance: cartInstance, journey: "cart-abandonment", status: "running" },
    ]);

    const purchase = await visit("/_ns/v1/events", {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/json" },
      body: JSON.stringify({ userId: user, events: [{ id: eid(), type: "purchase", props: { value: 90 } }] }),
    });
    expect(purchase.status).toBe(202);

    await instance.waitForStatus("complete");
    const outcome = (await instance.getOutput()) as JourneyOutcome;
    expect(outcome.sent).toEqual([]);
    expect(outcome.ended).toMatch(/purchase$/);
    expect(await journeysOf(`user:${user}`)).toMatchObject([
      { instance: cartInstance, status: "ended", messages: [] },
    ]);
    expect(await outboxOf([anonymous, person])).toEqual([]);
  });

  it("both in the same journey at login: the person's own entry goes on, the visitor's is ended and stopped", async () => {
    const user = newUser();
    const person = await canonicalForUser(user);
    const theirs = { id: eid(), type: "add_to_cart", props: { category: "hiking" } };
    await using personal = await introspectWorkflowInstance(
      env.JOURNEYS,
      instanceId("cart-abandonment", person, theirs.id),
    );
    await personal.modify(async (m) => {
      await m.disableSleeps();
    });
    const sent = await visit("/_ns/v1/events", {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/json" },
      body: JSON.stringify({ userId: user, events: [theirs] }),
    });
    expect(sent.status).toBe(202);

    const cookie = await newVisitor();
    const anonymous = idOf(cookie);
    const cart = { id: eid(), type: "add_to_cart", props: { category: "running" } };
    const duplicate = instanceId("cart-abandonment", anonymous, cart.id);
    await using visitors = await introspectWorkflowInstance(env.JOURNEYS, duplicate);
    await visitors.modify(async (m) => {
      await m.disableSleeps();
    });
    expect((await sendEvents(cookie, [cart])).status).toBe(202);
    await visitors.waitForStepResult({ name: "check 0 (start)" });

    const linked = await visit("/_ns/v1/identify", {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/json" },
      body: JSON.stringify({ anonymousId: anonymous, userId: user }),
    });
    expect(linked.status).toBe(200);
    await visitors.waitForStatus("terminated");
    const listed = await journeysOf(`user:${user}`);
    expect(listed.find((j) => j.instance === duplicate)).toMatchObject({
      status: "ended",
      reason: expect.stringMatching(/^merged: the person was already in this journey/),
    });
    expect(listed.find((j) => j.instance !== duplicate)).toMatchObject({ status: "running" });
  });
});
