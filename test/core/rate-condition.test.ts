import { describe, expect, it } from "vitest";
import { decide } from "../../src/core/decide.ts";
import type { VisitorEvent } from "../../src/core/model.ts";
import { type Condition, parseRules } from "../../src/rules/index.ts";
import { compile, context, DAY, event, NOW, stateOf } from "./helpers.ts";

// The rate condition ("opens most of the emails it receives"), through a one-experience document.
const doc = (audience: Condition, settings: Record<string, unknown> = {}) => ({
  version: "t",
  settings,
  placements: { slot: { selector: "#slot" } },
  experiences: [{ id: "x", placement: "slot", audience, content: { html: "yes" } }],
});

/** `sends` emails sent, the first `opens` of them opened, one a day over the last days. */
function mailbox(sends: number, opens: number): VisitorEvent[] {
  const events: VisitorEvent[] = [];
  for (let i = 0; i < sends; i++) {
    events.push(event("email_send", (i + 1) * DAY, {}, "email"));
    if (i < opens) events.push(event("email_open", (i + 1) * DAY - 1000, {}, "email"));
  }
  return events;
}

async function explained(audience: Condition, events: VisitorEvent[]) {
  const rules = await compile(doc(audience));
  const result = decide(rules, {
    visitorId: "v1",
    now: NOW,
    traits: {},
    state: stateOf(events),
    context: context(),
    consent: {},
    explain: true,
  });
  return { matched: result.decisions[0]?.experience === "x", detail: result.explanation?.slot?.[0]?.detail };
}

const engaged: Condition = {
  rate: { of: "email_open", per: "email_send", within: "30d", gte: 0.5, minCount: 3 },
};

describe("rate: one event type per another in a window", () => {
  it("8 opens of 10 sends is a rate of 0.8, which is at least 0.5", async () => {
    const { matched, detail } = await explained(engaged, mailbox(10, 8));
    expect(matched).toBe(true);
    expect(detail).toBeNull();
  });

  it("2 opens of 10 sends is below 0.5, and the explanation gives the rate", async () => {
    expect(await explained(engaged, mailbox(10, 2))).toEqual({
      matched: false,
      detail: "experiences[0].audience: email_open per email_send in 30d is 2/10 = 0.2, wanted gte 0.5",
    });
  });

  it("1 open of 1 send is fewer sends than minCount: false, and the explanation says not enough sends", async () => {
    expect(await explained(engaged, mailbox(1, 1))).toEqual({
      matched: false,
      detail: "experiences[0].audience: not enough email_send: 1 in 30d, at least 3 needed",
    });
  });

  it("without minCount, no send at all is not a rate (no division by zero)", async () => {
    const lapsed: Condition = { rate: { of: "email_open", per: "email_send", within: "30d", lte: 0.1 } };
    expect((await explained(lapsed, [])).matched).toBe(false);
    expect((await explained(lapsed, mailbox(10, 1))).matched).toBe(true);
  });

  it("every bound given must hold: between 20% and 50%", async () => {
    const lukewarm: Condition = {
      rate: { of: "email_open", per: "email_send", within: "30d", gte: 0.2, lt: 0.5 },
    };
    expect((await explained(lukewarm, mailbox(10, 2))).matched).toBe(true);
    expect((await explained(lukewarm, mailbox(10, 5))).matched).toBe(false);
    expect((await explained(lukewarm, mailbox(10, 1))).matched).toBe(false);
  });

  it("counts only the window: sends and opens older than it are left out", async () => {
    // 3 recent sends all opened, 5 older sends never opened.
    const events = [...mailbox(3, 3), ...[40, 41, 42, 43, 44].map((d) => event("email_send", d * DAY))];
    expect((await explained(engaged, events)).matched).toBe(true);
  });

  it("asks the visitor's object for events as far back as the rate's window", async () => {
    const rules = await compile(doc(engaged));
    expect(rules.eventHorizonMs).toBe(30 * DAY);
  });
});

describe("rate validation", () => {
  const errorsOf = (audience: unknown, settings: Record<string, unknown> = {}) => {
    const parsed = parseRules({ ...doc(audience as Condition), settings });
    return parsed.ok ? [] : parsed.errors;
  };

  it("refuses a window longer than settings.historyDays, naming the path and the limit", () => {
    const longer = { rate: { of: "email_open", per: "email_send", within: "90d", gte: 0.5 } };
    expect(errorsOf(longer)).toEqual([
      {
        path: "experiences[0].audience.rate.within",
        message: expect.stringMatching(/"90d" .* 30 days of history kept \(settings\.historyDays\)/),
      },
    ]);
    expect(errorsOf(longer, { historyDays: 90 })).toEqual([]);
  });

  it("refuses a rate without a bound, which would match everyone with a send", () => {
    expect(errorsOf({ rate: { of: "email_open", per: "email_send", within: "30d", minCount: 3 } })).toEqual([
      { path: "experiences[0].audience.rate", message: "a rate needs a bound: gte, gt, lte or lt" },
    ]);
  });

  it.each([
    [{ within: "0d" }, "experiences[0].audience.rate.within"],
    [{ gte: -1 }, "experiences[0].audience.rate.gte"],
    [{ minCount: 0 }, "experiences[0].audience.rate.minCount"],
  ])("refuses %j at its path", (over, path) => {
    const rate = { of: "email_open", per: "email_send", within: "30d", gte: 0.5, ...over };
    expect(errorsOf({ rate }).map((e) => e.path)).toEqual([path]);
  });
});
