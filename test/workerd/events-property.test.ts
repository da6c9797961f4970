// Property: whatever JSON is thrown at POST /_ns/v1/events, the answer is a 2xx or 4xx JSON body,
// never a 500; and every event the answer does not reject is retrievable through the export.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ADMIN, SERVER, visit } from "./helpers.ts";

const TYPES = [
  "page_view",
  "product_view",
  "add_to_cart",
  "purchase",
  "email_open",
  "search",
  // Names of Object's members: "constructor" passes the type rule and must count, not throw.
  "constructor",
  "toString",
  "hasOwnProperty",
  "Bad Type",
  "",
];

let ids = 0;
const eventLike = fc.record(
  {
    id: fc.oneof(
      fc.constant(null).map(() => `p-${Date.now()}-${++ids}`),
      fc.string({ maxLength: 4 }),
      fc.integer(),
    ),
    type: fc.oneof(fc.constantFrom(...TYPES), fc.string({ maxLength: 8 })),
    ts: fc.oneof(
      fc.constant(undefined),
      fc.integer({ min: -10 * 60e3, max: 10 * 60e3 }).map((d) => Date.now() + d),
      fc.double(),
    ),
    channel: fc.constantFrom("web", "email", "pos", "NOT OK"),
    props: fc.oneof(
      fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 3 })),
      fc.jsonValue(),
    ),
  },
  { requiredKeys: [] },
);

const bodyArb = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ events: fc.array(fc.oneof(eventLike, fc.jsonValue()), { maxLength: 8 }) }),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 5 }) },
);

describe("POST /_ns/v1/events under arbitrary JSON", () => {
  it("answers 2xx/4xx JSON, never 500; every event not rejected can be exported", async () => {
    let run = 0;
    let acceptedTotal = 0;
    await fc.assert(
      fc.asyncProperty(bodyArb, fc.boolean(), async (body, beacon) => {
        const userId = `prop-${Date.now()}-${++run}`;
        const envelope =
          body && typeof body === "object" && !Array.isArray(body) && "events" in body
            ? { userId, ...body }
            : body;
        const res = await visit("/_ns/v1/events", {
          method: "POST",
          headers: { "content-type": beacon ? "text/plain" : "application/json", ...SERVER },
          body: JSON.stringify(envelope),
        });
        expect(res.status).toBeLessThan(500);
        expect(res.headers.get("content-type")).toContain("application/json");
        const answer = (await res.json()) as { rejected?: Array<{ index: number }>; accepted?: number };
        if (res.status !== 202) return;
        acceptedTotal += answer.accepted ?? 0;
        const events = (envelope as { events: unknown[] }).events;
        const rejected = new Set(answer.rejected!.map((r) => r.index));
        const kept = events.filter((_, i) => !rejected.has(i)).map((e) => (e as { id: string }).id);
        if (kept.length === 0) return;
        const exported = await visit(`/_ns/v1/profiles/user:${encodeURIComponent(userId)}`, {
          headers: ADMIN,
        });
        const state = ((await exported.json()) as { state: { events: Array<{ id: string }> } }).state;
        const stored = new Set(state.events.map((e) => e.id));
        for (const id of kept) expect(stored.has(id)).toBe(true);
        expect(stored.size).toBe(answer.accepted);
      }),
      { numRuns: 80 },
    );
    expect(acceptedTotal).toBeGreaterThan(0); // the generator does reach the storing path
  }, 60_000);
});
