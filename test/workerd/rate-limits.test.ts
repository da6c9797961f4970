import { createExecutionContext, listDurableObjectIds } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { handle } from "../../src/http/app.ts";
import { addressKey } from "../../src/http/limits.ts";
import type { Env } from "../../src/platform/env.ts";
import { BROWSER_UA, eid, newVisitor, SERVER } from "./helpers.ts";

// Write limits (issue 12, item 7) with the real rate-limiting binding: wrangler.toml's
// LIMIT_NEW_VISITORS (10 a minute per address) as configured, and for the other limits a small
// limiter (TEST_LIMIT_3, vitest.config.ts: 3 a minute) stood in for one binding at a time.
//
// The local limiter counts in fixed 60 s windows. A scenario that straddles a window's end would
// see its counts reset, so it runs again, once, with fresh keys (it cannot straddle two).

const WINDOW_MS = 60_000;

async function inOneWindow<T>(scenario: (fresh: string) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const window = Math.floor(Date.now() / WINDOW_MS);
    const result = await scenario(`${crypto.randomUUID()}:`);
    if (attempt > 0 || Math.floor(Date.now() / WINDOW_MS) === window) return result;
  }
}

/** The small test limiter, its keys kept apart per scenario (the worker's own key follows `fresh`). */
function small(fresh: string): RateLimit {
  const limiter = env.TEST_LIMIT_3 as RateLimit;
  return { limit: ({ key }) => limiter.limit({ key: `${fresh}${key}` }) };
}

/** Addresses in documentation ranges, a new one each call: every scenario its own clients. */
let clients = 0;
const address = () => `198.51.${100 + Math.floor(clients / 250)}.${(clients++ % 250) + 1}`;
/** A /64 of its own (`2001:db8:<n>:1`), and its neighbour (`…:2`). */
const ipv6Prefix = () => `2001:db8:${(++clients).toString(16)}:1`;

function post(
  path: string,
  body: unknown,
  headers: Record<string, string>,
  replaced: Record<string, unknown> = {},
): Promise<Response> {
  return handle(
    new Request(`https://shop.test/_ns${path}`, {
      method: "POST",
      headers: { "content-type": "text/plain;charset=UTF-8", "user-agent": BROWSER_UA, ...headers },
      body: JSON.stringify(body),
    }),
    { ...env, ...replaced } as Env,
    createExecutionContext(),
  );
}

const batch = () => ({
  sentAt: Date.now(),
  events: [{ id: eid(), type: "page_view", props: { path: "/" } }],
});

const cookieLess = (ip: string, replaced: Record<string, unknown> = {}) =>
  post("/v1/events", batch(), { "cf-connecting-ip": ip }, replaced);

beforeEach(() => {
  vi.spyOn(console, "log").mockImplementation(() => {});
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe("writes without a visitor cookie (each would make a new visitor)", () => {
  it("from one address: the first 10 a minute are stored, then 429 with Retry-After, and no visitor object is made for a refused one", async () => {
    const { statuses, refused, created } = await inOneWindow(async () => {
      const ip = address();
      const before = (await listDurableObjectIds(env.VISITOR)).length;
      const responses: Response[] = [];
      for (let i = 0; i < 14; i++) responses.push(await cookieLess(ip));
      const created = (await listDurableObjectIds(env.VISITOR)).length - before;
      return {
        statuses: responses.map((r) => r.status),
        refused: responses.find((r) => r.status === 429),
        created,
      };
    });
    expect(statuses).toEqual([...Array(10).fill(202), ...Array(4).fill(429)]);
    expect(refused!.headers.get("retry-after")).toBe("60");
    expect(await refused!.json()).toMatchObject({ error: "rate_limited" });
    expect(refused!.headers.getSetCookie()).toEqual([]);
    expect(created).toBe(10);
  });

  it("another address is unaffected; an IPv6 address counts with its whole /64", async () => {
    const { other, sameSlash64, otherSlash64 } = await inOneWindow(async () => {
      const prefix = ipv6Prefix();
      for (let i = 0; i < 10; i++) expect((await cookieLess(`${prefix}::${i + 1}`)).status).toBe(202);
      return {
        other: (await cookieLess(address())).status,
        sameSlash64: (await cookieLess(`${prefix}:ffff:ffff:ffff:ffff`)).status,
        otherSlash64: (await cookieLess(`${prefix.replace(/:1$/, ":2")}::1`)).status,
      };
    });
    expect(other).toBe(202);
    expect(sameSlash64).toBe(429);
    expect(otherSlash64).toBe(202);
  });

  it("a browser with its cookie is not held to the new-visitor allowance", async () => {
    const statuses = await inOneWindow(async () => {
      const ip = address();
      for (let i = 0; i < 10; i++) await cookieLess(ip);
      const cookie = await newVisitor();
      return [
        (await cookieLess(ip)).status,
        (await post("/v1/events", batch(), { cookie, "cf-connecting-ip": ip })).status,
      ];
    });
    expect(statuses).toEqual([429, 202]);
  });
});

describe("per-client, per-key and global limits (a small limiter stood in)", () => {
  it("a browser's writes per address: events, consent and decide with events count together", async () => {
    const statuses = await inOneWindow(async (fresh) => {
      const limits = { LIMIT_CLIENT_WRITES: small(fresh) };
      const cookie = await newVisitor();
      const ip = address();
      const headers = { cookie, "cf-connecting-ip": ip };
      const json = { ...headers, "content-type": "application/json" };
      return [
        (await post("/v1/events", batch(), headers, limits)).status,
        (await post("/v1/consent", { purposes: { measurement: true } }, json, limits)).status,
        (await post("/v1/decide", { channel: "web", events: batch().events }, json, limits)).status,
        (await post("/v1/events", batch(), headers, limits)).status,
        // A decision without events is no write: not counted, not refused.
        (await post("/v1/decide", { channel: "web" }, json, limits)).status,
        (await post("/v1/events", batch(), { ...headers, "cf-connecting-ip": address() }, limits)).status,
      ];
    });
    expect(statuses).toEqual([202, 200, 200, 429, 200, 202]);
  });

  it("a server key is limited per key, whatever its address; browsers from the same address are not", async () => {
    const statuses = await inOneWindow(async (fresh) => {
      const limits = { LIMIT_SERVER_WRITES: small(fresh) };
      const server = (ip: string) =>
        post(
          "/v1/events",
          { userId: `limits-${crypto.randomUUID()}`, events: batch().events },
          { ...SERVER, "content-type": "application/json", "cf-connecting-ip": ip },
          limits,
        );
      const ip = address();
      const cookie = await newVisitor();
      return [
        (await server(address())).status,
        (await server(address())).status,
        (await server(address())).status,
        (await server(address())).status,
        (await post("/v1/events", batch(), { cookie, "cf-connecting-ip": ip }, limits)).status,
      ];
    });
    expect(statuses).toEqual([202, 202, 202, 429, 202]);
  });

  it("an event import counts against its server key; past it 429 and no visitor object is made", async () => {
    const statuses = await inOneWindow(async (fresh) => {
      const limits = { LIMIT_SERVER_WRITES: small(fresh) };
      const backfill = () =>
        handle(
          new Request("https://shop.test/_ns/v1/events/import", {
            method: "POST",
            headers: { ...SERVER, "content-type": "application/x-ndjson" },
            body: JSON.stringify({
              id: `user:limits-${crypto.randomUUID()}`,
              event: { id: eid(), type: "email_open", ts: Date.now() - 3600e3 },
            }),
          }),
          { ...env, ...limits } as Env,
          createExecutionContext(),
        );
      const before = (await listDurableObjectIds(env.VISITOR)).length;
      const results: number[] = [];
      for (let i = 0; i < 4; i++) results.push((await backfill()).status);
      return { results, created: (await listDurableObjectIds(env.VISITOR)).length - before };
    });
    expect(statuses).toEqual({ results: [200, 200, 200, 429], created: 3 });
  });

  it("every write counts against the global limit, whoever sends it", async () => {
    const statuses = await inOneWindow(async (fresh) => {
      const limits = { LIMIT_ALL_WRITES: small(fresh) };
      const cookie = await newVisitor();
      const results: number[] = [];
      for (let i = 0; i < 4; i++)
        results.push(
          (await post("/v1/events", batch(), { cookie, "cf-connecting-ip": address() }, limits)).status,
        );
      return results;
    });
    expect(statuses).toEqual([202, 202, 202, 429]);
  });
});

describe("a limiter that fails", () => {
  it("one that refuses answers 429; one that hangs or throws blocks nothing; one not bound is no limit, said once", async () => {
    const logged: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => void logged.push(String(line)));
    const cookie = await newVisitor();
    const limiters = {
      refuses: { limit: async () => ({ success: false }) },
      hangs: { limit: () => new Promise<never>(() => {}) },
      throws: { limit: () => Promise.reject(new Error("limiter down")) },
      unbound: undefined,
      "still unbound": undefined,
    };
    const statuses: Record<string, number> = {};
    for (const [name, limiter] of Object.entries(limiters)) {
      const res = await post(
        "/v1/events",
        batch(),
        { cookie, "cf-connecting-ip": address() },
        { LIMIT_CLIENT_WRITES: limiter, STORE_DEADLINE_MS: "5" },
      );
      statuses[name] = res.status;
    }
    expect(statuses).toEqual({ refuses: 429, hangs: 202, throws: 202, unbound: 202, "still unbound": 202 });
    const problems = logged
      .map((line) => JSON.parse(line) as { msg?: string; name?: string })
      .filter((line) => line.msg === "config_problem" && line.name === "LIMIT_CLIENT_WRITES");
    expect(problems).toHaveLength(1);
  });
});

describe("addressKey", () => {
  it("keeps an IPv4 address whole and an IPv6 address by its first 64 bits", () => {
    expect(addressKey("203.0.113.7")).toBe("203.0.113.7");
    expect(addressKey("2001:DB8:0:1:aaaa:bbbb:cccc:dddd")).toBe("2001:db8:0:1::/64");
    expect(addressKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(addressKey("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(addressKey(null)).toBeNull();
  });
});
