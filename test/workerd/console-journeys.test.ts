import { introspectWorkflowInstance } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import bundledDocument from "../../rules/northstar.rules.json";
import { keepDeadLetter } from "../../src/journeys/delivery.ts";
import { instanceId } from "../../src/rules/journey-triggers.ts";
import { ADMIN, eid, idOf, newVisitor, publishDoc, sendEvents, visit } from "./helpers.ts";

// The console's journeys: a person's entries with their step, cancelling one, the dead letters.
const BASE = "/_ns/console";
const ORIGIN = "https://shop.test";

beforeAll(async () => {
  // biome-ignore lint/suspicious/noExplicitAny: the test edits arbitrary parts of a JSON document
  const doc = structuredClone(bundledDocument) as any;
  doc.version = "console-journeys-1";
  // A journey held at a wait until the test says go, so the console sees it running.
  doc.journeys.probe = {
    trigger: { event: "probe_start" },
    steps: [
      { id: "hold", waitForEvent: { event: "probe_go", timeout: "1h" } },
      { id: "message", send: { via: [{ channel: "email", placement: "email-hero" }], bestHourWithin: "0s" } },
    ],
  };
  await publishDoc(doc);
});

function form(fields: Record<string, string>, cookie: string, origin = ORIGIN) {
  return {
    method: "POST",
    cookie,
    headers: { "content-type": "application/x-www-form-urlencoded", origin },
    body: new URLSearchParams(fields).toString(),
  };
}

let signIns = 0;

async function signIn(): Promise<string> {
  const res = await visit(`${BASE}/sign-in`, {
    ...form({ token: env.ADMIN_TOKEN as string }, ""),
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      origin: ORIGIN,
      "cf-connecting-ip": `203.0.113.${++signIns}`,
    },
  });
  expect(res.status).toBe(303);
  return res.headers
    .getSetCookie()
    .find((c) => c.startsWith("ns_console="))!
    .split(";")[0]!;
}

async function text(path: string, cookie: string): Promise<string> {
  const res = await visit(path, { cookie });
  expect(res.status).toBe(200);
  return res.text();
}

/** A person in the probe journey, held at its wait. */
async function heldAtTheWait() {
  const cookie = await newVisitor();
  const visitorId = idOf(cookie);
  const start = { id: eid(), type: "probe_start" };
  const instance = await introspectWorkflowInstance(env.JOURNEYS, instanceId("probe", visitorId, start.id));
  expect((await sendEvents(cookie, [start])).status).toBe(202);
  // The first check records "at step hold": from then on the entry stands at its wait.
  await instance.waitForStepResult({ name: "check 0 (start)" });
  return { visitorId, instance, id: instanceId("probe", visitorId, start.id) };
}

async function apiJourneys(visitorId: string) {
  const res = await visit(`/_ns/v1/profiles/${visitorId}/journeys`, { headers: ADMIN });
  return ((await res.json()) as { journeys: Array<{ instance: string; status: string; step: string }> })
    .journeys;
}

describe("a person's journeys in the console", () => {
  it("the person page shows the journey they are in, running, at its step, with a cancel link", async () => {
    const { visitorId, instance, id } = await heldAtTheWait();
    await using _ = instance;
    const cookie = await signIn();
    expect(await apiJourneys(visitorId)).toMatchObject([{ instance: id, status: "running", step: "hold" }]);
    const page = await text(`${BASE}/person?id=${visitorId}`, cookie);
    expect(page).toContain('data-journey="probe" data-status="running"');
    expect(page).toContain('<strong class="step">hold</strong>');
    expect(page).toContain(`Instance ${id}`);
    expect(page).toContain(`${BASE}/person/journeys/cancel?id=${visitorId}&amp;instance=${id}`);
  });

  it("cancel is refused without the session's CSRF token or from another origin, and with both ends the journey", async () => {
    const { visitorId, instance, id } = await heldAtTheWait();
    await using _ = instance;
    const cookie = await signIn();
    const fields = { id: visitorId, instance: id };

    expect((await visit(`${BASE}/person/journeys/cancel`, form(fields, cookie))).status).toBe(403);
    expect(
      (await visit(`${BASE}/person/journeys/cancel`, form({ ...fields, csrf: "forged" }, cookie))).status,
    ).toBe(403);
    const confirm = await text(`${BASE}/person/journeys/cancel?id=${visitorId}&instance=${id}`, cookie);
    const csrf = /name="csrf" value="([^"]+)"/.exec(confirm)![1]!;
    expect(
      (await visit(`${BASE}/person/journeys/cancel`, form({ ...fields, csrf }, cookie, "https://evil.test")))
        .status,
    ).toBe(403);
    expect((await apiJourneys(visitorId))[0]).toMatchObject({ status: "running" });

    const done = await visit(`${BASE}/person/journeys/cancel`, form({ ...fields, csrf }, cookie));
    expect(done.status).toBe(303);
    expect(done.headers.get("location")).toBe(`${BASE}/person?id=${visitorId}&cancelled=${id}`);
    await instance.waitForStatus("terminated");
    const page = await text(done.headers.get("location")!, cookie);
    expect(page).toContain(`Cancelled ${id}.`);
    expect(page).toContain('data-journey="probe" data-status="cancelled"');
    expect(page).toContain("cancelled by an admin");
    expect(page).not.toContain("Cancel this journey");
  });
});

describe("the dead-letters page", () => {
  it("lists each dead letter, newest first, with its channel, person, journey, reason and attempts, escaped", async () => {
    const cookie = await signIn();
    const message = (key: string, journey: string) => ({
      key,
      visitorId: "v_<b>someone</b>",
      journey,
      instance: `${journey}-1`,
      step: "remind",
      channel: "sms",
    });
    await keepDeadLetter(
      env,
      {
        at: 1_795_000_000_000,
        reason: "destination answered 410",
        attempts: 1,
        message: message("old.remind", "cart"),
      },
      "old.remind",
    );
    await keepDeadLetter(
      env,
      {
        at: 1_795_000_060_000,
        reason: "destination answered <script>alert(1)</script>",
        attempts: 6,
        message: message("new.remind", "win-back"),
      },
      "new.remind",
    );
    const page = await text(`${BASE}/dead-letters`, cookie);
    expect(page).toContain(`href="${BASE}/dead-letters">Dead letters</a>`);
    const rows = [
      ...page.matchAll(
        /<tr><td>([^<]+)<\/td><td>([^<]+)<\/td><td>(.*?)<\/td><td>(.*?)<\/td><td class="reason">(.*?)<\/td><td>(\d+)<\/td><\/tr>/g,
      ),
    ].map((m) => m.slice(1));
    expect(rows).toEqual([
      [
        new Date(1_795_000_060_000).toISOString(),
        "sms",
        `<a href="${BASE}/person?id=v_%3Cb%3Esomeone%3C%2Fb%3E">v_&lt;b&gt;someone&lt;/b&gt;</a>`,
        "win-back / remind",
        "destination answered &lt;script&gt;alert(1)&lt;/script&gt;",
        "6",
      ],
      [
        new Date(1_795_000_000_000).toISOString(),
        "sms",
        `<a href="${BASE}/person?id=v_%3Cb%3Esomeone%3C%2Fb%3E">v_&lt;b&gt;someone&lt;/b&gt;</a>`,
        "cart / remind",
        "destination answered 410",
        "1",
      ],
    ]);
    expect(page).not.toContain("<script>");
  });
});
