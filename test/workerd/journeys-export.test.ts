// A person's journeys in their profile export, and every message a journey sent in the event stream
// (docs/export.md, `message` and `delivery`), through the real bindings: the Workflows instance runs
// (its sleeps skipped), the DELIVERY queue's consumer posts to the test destination, the EXPORT
// queue's consumer writes the R2 files, read back and parsed with the export's schema.
import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  introspectWorkflowInstance,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import bundledDocument from "../../rules/northstar.rules.json";
import worker from "../../src/index.ts";
import type { JourneyOutcome } from "../../src/journeys/journey-workflow.ts";
import type { DeliveryMessage } from "../../src/journeys/message.ts";
import { personRows } from "../../src/measure/experiment-object.ts";
import { instanceId } from "../../src/rules/journey-triggers.ts";
import type { ExportRecord } from "../../src/state/export-record.ts";
import { canonicalForUser } from "../../src/state/visitor-id.ts";
import { type JourneyRecord, visitorObject } from "../../src/state/visitor-object.ts";
import { exportedWhen, hasId } from "./export-lines.ts";
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
import { reserveMessage } from "./journey-messages.ts";

const EXPERIMENT = "email-copy-test";

/** The demo's rules, with an A/B test on the email placement and two journeys that email at once. */
function rules(): Record<string, unknown> {
  // biome-ignore lint/suspicious/noExplicitAny: the test edits arbitrary parts of a JSON document
  const doc = structuredClone(bundledDocument) as any;
  doc.version = "journeys-export-test-1";
  doc.experiments[EXPERIMENT] = {
    description: "which email headline brings people back",
    seed: "email-copy-1",
    variants: [
      { id: "plain", weight: 50 },
      { id: "warm", weight: 50 },
    ],
    holdout: 0,
    goal: "purchase",
    status: "running",
  };
  doc.experiences.push({
    id: "email-copy-ab",
    placement: "email-hero",
    priority: 100,
    experiment: EXPERIMENT,
    variants: {
      plain: { json: { headline: "Your picks are waiting" } },
      warm: { json: { headline: "We kept your picks warm" } },
    },
  });
  const emailNow = (trigger: string) => ({
    trigger: { event: trigger },
    steps: [
      { id: "message", send: { via: [{ channel: "email", placement: "email-hero" }], bestHourWithin: "0s" } },
    ],
  });
  doc.journeys["email-now"] = emailNow("email_now");
  doc.journeys["email-dry"] = { ...emailNow("email_dry"), dryRun: true };
  return doc;
}

beforeAll(async () => {
  await publishDoc(rules());
});
afterAll(unpublishRules);

/** A new visitor entering `journey` by its trigger event; the instance is run to its end, sleeps skipped. */
async function messaged(journey: string, trigger: Record<string, unknown>, cookie?: string) {
  const person = cookie ?? (await newVisitor());
  const visitorId = idOf(person);
  const event = { id: eid(), ...trigger };
  const instance = instanceId(journey, visitorId, event.id);
  await using introspected = await introspectWorkflowInstance(env.JOURNEYS, instance);
  await introspected.modify(async (m) => {
    await m.disableSleeps();
    // The cart reminder waits for a purchase first: none comes.
    if (journey === "cart-abandonment") await m.forceEventTimeout({ name: "0 wait-for-purchase" });
  });
  expect((await sendEvents(person, [event])).status).toBe(202);
  await introspected.waitForStatus("complete");
  const outcome = (await introspected.getOutput()) as JourneyOutcome;
  expect(outcome.sent).toHaveLength(1);
  return { cookie: person, visitorId, instance, key: `${instance}.${outcome.sent[0]!.step}`, outcome };
}

/** The person's profile export, once the message's delivery outcome is held (the consumer's own time). */
async function exportedProfile(
  visitorId: string,
  key: string,
): Promise<{ journeys: JourneyRecord[]; state: { assignments: Record<string, string> } }> {
  return vi.waitFor(
    async () => {
      const res = await visit(`/_ns/v1/profiles/${visitorId}`, { headers: ADMIN });
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        journeys: JourneyRecord[];
        state: { assignments: Record<string, string> };
      };
      const message = body.journeys.flatMap((entry) => entry.messages).find((m) => m.key === key);
      expect(message?.sent?.delivery).toBeTruthy();
      return body;
    },
    { timeout: 15_000, interval: 100 },
  );
}

/** A person's lines, counted once a later marker line arrived (so a second copy had its chance). */
async function linesAfterMarker(visitorId: string): Promise<ExportRecord[]> {
  const other = await newVisitor();
  const marker = { id: eid(), type: "search", props: {} };
  await sendEvents(other, [marker]);
  const lines = await exportedWhen(hasId(`event:${idOf(other)}:${marker.id}`));
  return lines.filter((line) => line.visitorId === visitorId && line.kind !== "event");
}

/** A message reserved by a person's object, as a send step leaves it before the consumer takes it. */
async function reservedMessage(): Promise<{ visitorId: string; key: string; message: DeliveryMessage }> {
  const cookie = await newVisitor();
  const visitorId = idOf(cookie);
  // Someone the object knows (a journey's person always sent something).
  expect((await sendEvents(cookie, [{ id: eid(), type: "product_view", props: {} }])).status).toBe(202);
  const message = await reserveMessage(visitorId, {
    rulesVersion: "journeys-export-test-1",
    decision: { experience: "sms-cart", variant: null, reason: "TARGET_MATCH" },
  });
  return { visitorId, key: message.key, message };
}

const linesOf = (lines: ExportRecord[], visitorId: string, kind: ExportRecord["kind"]) =>
  lines.filter((line) => line.visitorId === visitorId && line.kind === kind);

describe("a person's journeys in their profile export", () => {
  it("shows each entry, its step and outcome, and the message sent: channel, placement, decision, sent and delivered times, key", async () => {
    const { visitorId, instance, key, outcome } = await messaged("cart-abandonment", {
      type: "add_to_cart",
      props: { category: "running" },
    });
    const profile = await exportedProfile(visitorId, key);
    expect(profile.journeys).toHaveLength(1);
    const [entry] = profile.journeys;
    expect(entry).toMatchObject({ instance, journey: "cart-abandonment", status: "ended", step: "remind" });
    expect(entry!.enteredAt).toBeTypeOf("number");
    expect(entry!.messages).toHaveLength(1);
    expect(entry!.messages[0]).toMatchObject({
      key,
      step: "remind",
      channel: "sms",
      outcome: "delivered",
      sent: {
        placement: "sms-text",
        experience: "sms-cart",
        experiment: null,
        variant: null,
        dryRun: false,
        sentAt: outcome.sent[0]!.sendAt,
        delivery: "delivered",
        deliveryReason: null,
      },
    });
    expect(entry!.messages[0]!.sent!.deliveryAt).toBeTypeOf("number");
    expect(entry!.log.map((line) => line.what)).toContain("reserved");
    // The same admin gate as the rest of the export.
    expect((await visit(`/_ns/v1/profiles/${visitorId}`)).status).toBe(401);
  });
});

describe("a login carries the messages sent", () => {
  it("a message sent before login is in the person's export after it, with what was sent and its delivery", async () => {
    const { visitorId: anonymous, key } = await messaged("email-now", { type: "email_now" });
    await exportedProfile(anonymous, key);
    const userId = `journeys-export-${eid()}`;
    const person = await canonicalForUser(userId);
    const linked = await visit("/_ns/v1/identify", {
      method: "POST",
      headers: { ...SERVER, "content-type": "application/json" },
      body: JSON.stringify({ anonymousId: anonymous, userId }),
    });
    expect(await linked.json()).toMatchObject({ visitorId: person, merged: true });
    const profile = await exportedProfile(person, key);
    expect(profile.journeys.flatMap((entry) => entry.messages)).toMatchObject([
      { key, sent: { placement: "email-hero", experience: "email-copy-ab", delivery: "delivered" } },
    ]);
  });
});

describe("every message in the event stream", () => {
  it("a message handed to delivery is one `message` line and its delivery one `delivery` line, joined by key", async () => {
    const { visitorId, key, instance, outcome } = await messaged("cart-abandonment", {
      type: "add_to_cart",
      props: { category: "hiking" },
    });
    const lines = await exportedWhen(
      (all) => hasId(`message:${visitorId}:${key}`)(all) && hasId(`delivery:${visitorId}:${key}`)(all),
    );
    expect(linesOf(lines, visitorId, "message")).toEqual([
      {
        v: 1,
        kind: "message",
        id: `message:${visitorId}:${key}`,
        at: new Date(outcome.sent[0]!.sendAt).toISOString(),
        visitorId,
        key,
        journey: "cart-abandonment",
        instance,
        step: "remind",
        channel: "sms",
        placement: "sms-text",
        experience: "sms-cart",
        experiment: null,
        variant: null,
        rulesVersion: "journeys-export-test-1",
        dryRun: false,
      },
    ]);
    expect(linesOf(lines, visitorId, "delivery")).toMatchObject([
      {
        v: 1,
        key,
        journey: "cart-abandonment",
        channel: "sms",
        outcome: "delivered",
        reason: null,
        dryRun: false,
      },
    ]);
  });

  it("a retried record and a redelivered outcome add no second line", async () => {
    const { visitorId, key } = await messaged("cart-abandonment", { type: "add_to_cart", props: {} });
    const lines = await exportedWhen(
      (all) => hasId(`message:${visitorId}:${key}`)(all) && hasId(`delivery:${visitorId}:${key}`)(all),
    );
    const [message] = linesOf(lines, visitorId, "message");
    const [delivery] = linesOf(lines, visitorId, "delivery");
    if (message?.kind !== "message" || delivery?.kind !== "delivery") throw new Error("no lines");
    // The send step's record retried, and the consumer reporting the same delivery again.
    const visitor = visitorObject(env, visitorId);
    const { v: _v, kind: _kind, id: _id, at, visitorId: _visitor, ...facts } = message;
    await visitor.messageSent({ ...facts, sentAt: Date.parse(at) });
    await visitor.deliveryOutcome({
      key,
      instance: message.instance,
      journey: message.journey,
      step: message.step,
      channel: message.channel,
      placement: message.placement,
      experience: message.experience,
      variant: message.variant,
      rulesVersion: message.rulesVersion,
      dryRun: false,
      outcome: "delivered",
      reason: null,
      at: Date.now(),
    });
    expect(await linesAfterMarker(visitorId)).toHaveLength(2);
  });

  it("a message the destination refuses to the last attempt is a `dead_lettered` delivery line with the reason", async () => {
    const { visitorId, key, message } = await reservedMessage();
    await env.DESTINATION_SERVICE!.fetch(`https://destination.test/outbox/fail?times=99&key=${key}`);
    const batch = createMessageBatch("northstar-delivery", [
      { id: "m-last", timestamp: new Date(), attempts: 6, body: message },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["m-last"]);
    const lines = await exportedWhen(hasId(`delivery:${visitorId}:${key}`));
    expect(linesOf(lines, visitorId, "delivery")).toMatchObject([
      { key, outcome: "dead_lettered", reason: "destination answered 503", channel: "sms", dryRun: false },
    ]);
    const profile = await exportedProfile(visitorId, key);
    expect(profile.journeys[0]!.messages[0]!.sent).toMatchObject({
      placement: "sms-text",
      delivery: "dead_lettered",
      deliveryReason: "destination answered 503",
    });
  });

  it("a message whose decision is an experiment's arm names it, keeps the arm, and counts the person in that experiment once", async () => {
    const { visitorId, key } = await messaged("email-now", { type: "email_now" });
    const lines = await exportedWhen(hasId(`message:${visitorId}:${key}`));
    const [message] = linesOf(lines, visitorId, "message");
    expect(message).toMatchObject({ channel: "email", placement: "email-hero", experience: "email-copy-ab" });
    const variant = message?.kind === "message" ? message.variant : null;
    expect(["plain", "warm"]).toContain(variant);
    expect(message).toMatchObject({ experiment: EXPERIMENT });
    // Counted once, in the arm they were sent; the arm is theirs from now on (a page shows it too).
    const rows = await vi.waitFor(
      async () => {
        const found = await personRows(env, EXPERIMENT, [visitorId]);
        expect(found).toHaveLength(1);
        return found;
      },
      { timeout: 5000, interval: 100 },
    );
    expect(rows[0]).toMatchObject({ visitorId, variant });
    const profile = await exportedProfile(visitorId, key);
    expect(profile.state.assignments[EXPERIMENT]).toBe(variant);
  });

  it("a dry run's message is exported with dryRun: true, and counts nobody in the experiment", async () => {
    const { visitorId, key } = await messaged("email-dry", { type: "email_dry" });
    const lines = await exportedWhen(
      (all) => hasId(`message:${visitorId}:${key}`)(all) && hasId(`delivery:${visitorId}:${key}`)(all),
    );
    expect(linesOf(lines, visitorId, "message")).toMatchObject([{ dryRun: true, experiment: EXPERIMENT }]);
    expect(linesOf(lines, visitorId, "delivery")).toMatchObject([{ dryRun: true, outcome: "delivered" }]);
    const profile = await exportedProfile(visitorId, key);
    expect(profile.state.assignments[EXPERIMENT]).toBeUndefined();
    expect(await personRows(env, EXPERIMENT, [visitorId])).toEqual([]);
  });

  it("a person who refused measurement still gets the message, and it is in their export, but not in the stream", async () => {
    const cookie = await newVisitor();
    const consent = await visit("/_ns/v1/consent", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ purposes: { measurement: false } }),
    });
    expect(consent.status).toBe(200);
    const { visitorId, key } = await messaged("email-now", { type: "email_now" }, cookie);
    const profile = await exportedProfile(visitorId, key);
    expect(profile.journeys[0]!.messages[0]).toMatchObject({ key, sent: { delivery: "delivered" } });
    expect(await personRows(env, EXPERIMENT, [visitorId])).toEqual([]);

    // A later line of a measured visitor is the marker: what came before it had its chance to arrive.
    const other = await newVisitor();
    const marker = { id: eid(), type: "search", props: {} };
    await sendEvents(other, [marker]);
    const lines = await exportedWhen(hasId(`event:${idOf(other)}:${marker.id}`));
    expect(lines.filter((line) => line.visitorId === visitorId)).toEqual([]);
  });
});
