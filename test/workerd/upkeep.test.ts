import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../src/core/visitor-state.ts";
import { nextUpkeepAt } from "../../src/state/upkeep.ts";
import { DAY_MS, emptyHeld, type HeldVisitor, IDLE_DELETE_MS } from "../../src/state/visitor-store.ts";

const NOW = Date.UTC(2026, 10, 29, 12);
const SEEN_MS = 31 * DAY_MS;
const BOUNDS = { ...DEFAULT_LIMITS, seenRetentionMs: SEEN_MS, idleMs: IDLE_DELETE_MS };

function held(change: (h: HeldVisitor) => void): HeldVisitor {
  const h = emptyHeld("v1");
  change(h);
  return h;
}

describe("when a visitor's object next has upkeep to do", () => {
  it("with nothing that expires, when the visitor has been idle 400 days", () => {
    const h = held((h) => {
      h.consentAt = NOW - 10 * DAY_MS;
    });
    expect(nextUpkeepAt(h, BOUNDS, null, NOW)).toBe(NOW - 10 * DAY_MS + IDLE_DELETE_MS + 1);
  });

  it("the first of: the oldest event leaving the log, the oldest counter, the oldest remembered id", () => {
    const h = held((h) => {
      h.state.lastSeen = NOW;
      h.state.events.push({ id: "a", type: "page_view", ts: NOW - 5 * DAY_MS, channel: "web", props: {} });
      h.state.counts.purchase = [[NOW - 60 * DAY_MS, 1]];
    });
    const event = NOW - 5 * DAY_MS + DEFAULT_LIMITS.maxEventAgeMs + 1;
    expect(nextUpkeepAt(h, BOUNDS, null, NOW)).toBe(event);
    const counter = NOW - 60 * DAY_MS + DEFAULT_LIMITS.countRetentionMs + 1;
    h.state.events.length = 0;
    expect(nextUpkeepAt(h, BOUNDS, null, NOW)).toBe(counter);
    expect(nextUpkeepAt(h, BOUNDS, NOW - 25 * DAY_MS, NOW)).toBe(NOW - 25 * DAY_MS + SEEN_MS + 1);
  });

  it("an anonymous visitor kept fewer idle days (ANONYMOUS_IDLE_DAYS) goes that much sooner", () => {
    const h = held((h) => {
      h.consentAt = NOW - 10 * DAY_MS;
    });
    const anonymous = { ...BOUNDS, idleMs: 30 * DAY_MS };
    expect(nextUpkeepAt(h, anonymous, null, NOW)).toBe(NOW + 20 * DAY_MS + 1);
  });

  it("never sooner than a day from now", () => {
    const h = held((h) => {
      h.state.events.push({ id: "a", type: "page_view", ts: NOW - 40 * DAY_MS, channel: "web", props: {} });
    });
    expect(nextUpkeepAt(h, BOUNDS, null, NOW)).toBe(NOW + DAY_MS);
  });
});
