import { env } from "cloudflare:workers";
import { visitorsWithSnapshot } from "./helpers.ts";

type TestEnv = typeof env;

/**
 * An environment in which the origin answers only once the visitor's decision is made, so the
 * response carries the headers chosen from the decision (the order a real origin, tens of
 * milliseconds away, usually gives), never the ones for a page that streams before it.
 *
 * The origin waits for the two reads the decision is made from: the visitor object's snapshot and
 * every traits read from PROFILES (the one read a page makes, and the second a browser stitched by a
 * server makes when the first answers). What remains after them is computation chained on settled
 * promises, with no I/O: one turn of the event loop (a zero-delay timer runs only once every queued
 * promise continuation has) lets it finish. No time passes and none is measured.
 */
export function originAfterDecision(overrides: Record<string, unknown> = {}): TestEnv {
  const base = { ...env, ...overrides } as TestEnv;
  let snapshotAnswered = () => {};
  const snapshotDone = new Promise<void>((resolve) => {
    snapshotAnswered = resolve;
  });
  const visitor = visitorsWithSnapshot(async (snapshot) => {
    try {
      return await snapshot();
    } finally {
      snapshotAnswered();
    }
  });
  const traitsReads: Promise<unknown>[] = [];
  const profiles = {
    get: (...args: Parameters<typeof env.PROFILES.get>) => {
      const read = (base.PROFILES.get as (...a: unknown[]) => Promise<unknown>)(...args);
      traitsReads.push(read);
      return read;
    },
  };
  const origin = {
    fetch: async (request: Request, init?: RequestInit) => {
      await snapshotDone;
      for (let settled = -1; settled !== traitsReads.length; ) {
        settled = traitsReads.length;
        await Promise.allSettled(traitsReads);
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
      return env.ORIGIN_SERVICE!.fetch(request, init);
    },
  };
  return { ...base, VISITOR: visitor, PROFILES: profiles, ORIGIN_SERVICE: origin } as unknown as TestEnv;
}
