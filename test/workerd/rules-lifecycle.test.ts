import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import bundledDocument from "../../rules/northstar.rules.json";
import { handle } from "../../src/http/app.ts";
import type { Env } from "../../src/platform/env.ts";
import {
  ACTIVE_KEY,
  HISTORY_KEY,
  hashRules,
  parseRules,
  publishRules,
  type RulesDocument,
  rollbackRules,
  versionKey,
} from "../../src/rules/index.ts";
import { resetRulesCache } from "../../src/state/rules-loader.ts";
import { ADMIN, BROWSER_UA, rulesKv } from "./helpers.ts";

/**
 * The rules life cycle against the real RULES namespace: published with the store functions the
 * CLI runs, loaded by the worker's loader, and reported on GET /_ns/v1/rules. Each test starts as a
 * fresh isolate (resetRulesCache); after that, the isolate stays warm and picks versions up only
 * through its own refresh, which the clock (faked Date, nothing else) lets fall due.
 */

const kv = rulesKv;

function rulesDoc(version: string): RulesDocument {
  const parsed = parseRules({
    version,
    placements: { hero: { selector: "#hero h1", pages: ["/"] } },
    experiences: [{ id: "everyone", placement: "hero", content: { html: `<em>rules ${version}</em>` } }],
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.rules;
}

async function publish(version: string): Promise<string> {
  const done = await publishRules(kv, rulesDoc(version), { generatedAt: new Date().toISOString() }, "t");
  if (!done.ok) throw new Error(done.message);
  return done.hash;
}

/** One request through the worker, background work (the rules refresh) included. */
async function request(path: string, init: RequestInit = {}, bindings: Env = env) {
  const headers = new Headers(init.headers);
  headers.set("user-agent", BROWSER_UA);
  const ctx = createExecutionContext();
  const res = await handle(new Request(`https://shop.test${path}`, { ...init, headers }), bindings, ctx);
  const body = await res.text();
  await waitOnExecutionContext(ctx);
  return { res, body };
}

async function status(bindings: Env = env) {
  const { res, body } = await request("/_ns/v1/rules", { headers: ADMIN }, bindings);
  expect(res.status).toBe(200);
  return JSON.parse(body) as { version: string; hash: string; source: string; lastError: string | null };
}

async function servedVersion(): Promise<string | null> {
  const { res, body } = await request("/");
  const version = res.headers.get("x-northstar-rules");
  expect(body).toContain(`<em>rules ${version}</em>`);
  return version;
}

/** Lets the warm isolate's refresh fall due, then runs it to completion with one request. */
async function refreshDue(bindings: Env = env): Promise<void> {
  vi.setSystemTime(Date.now() + 60_000);
  await request("/_ns/health", {}, bindings);
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  resetRulesCache();
});

afterEach(async () => {
  vi.useRealTimers();
  await env.RULES.delete(ACTIVE_KEY);
  await env.RULES.delete(HISTORY_KEY);
  resetRulesCache();
});

describe("a broken publish keeps the last good version serving and says why", () => {
  it("the stored hash differs from the pointer's (the document matches the pointer)", async () => {
    const hash = await publish("hash-1");
    expect(await servedVersion()).toBe("hash-1");

    const doc = rulesDoc("hash-2");
    const real = await hashRules(doc);
    await env.RULES.put(
      versionKey("hash-2"),
      JSON.stringify({ hash: "f".repeat(64), publishedAt: "t", doc }),
    );
    await env.RULES.put(ACTIVE_KEY, JSON.stringify({ version: "hash-2", hash: real }));
    await refreshDue();

    expect(await servedVersion()).toBe("hash-1");
    const s = await status();
    expect(s).toMatchObject({ version: "hash-1", hash, source: "kv" });
    expect(s.lastError).toMatch(/rules version hash-2 does not match its published hash/);
  });

  it("the stored document names another version than the pointer", async () => {
    await publish("ver-1");
    expect(await servedVersion()).toBe("ver-1");

    const doc = rulesDoc("ver-other");
    const hash = await hashRules(doc);
    await env.RULES.put(versionKey("ver-2"), JSON.stringify({ hash, publishedAt: "t", doc }));
    await env.RULES.put(ACTIVE_KEY, JSON.stringify({ version: "ver-2", hash }));
    await refreshDue();

    expect(await servedVersion()).toBe("ver-1");
    const s = await status();
    expect(s.version).toBe("ver-1");
    expect(s.lastError).toMatch(
      /rules version ver-2 is malformed: the stored document says version ver-other/,
    );
  });

  it("RULES.get throws on a warm isolate; the status then carries no ETag a poller could 304 on", async () => {
    const hash = await publish("kv-1");
    expect((await status()).version).toBe("kv-1");
    const broken = {
      ...env,
      RULES: {
        get: () => {
          throw new Error("KV unavailable");
        },
      } as unknown as KVNamespace,
    };
    await refreshDue(broken);

    const { res, body } = await request(
      "/_ns/v1/rules",
      { headers: { ...ADMIN, "if-none-match": `"${hash}"` } },
      broken,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("etag")).toBeNull();
    expect(JSON.parse(body)).toMatchObject({
      version: "kv-1",
      lastError: "rules pointer unreadable (error: KV unavailable)",
    });
    expect(await servedVersion()).toBe("kv-1");
  });
});

describe("rollback", () => {
  it("publish v1, publish v2, roll back with the CLI's store functions: a warm isolate serves v1 again", async () => {
    const v1 = await publish("rb-1");
    expect(await servedVersion()).toBe("rb-1");
    await publish("rb-2");
    await refreshDue();
    expect(await servedVersion()).toBe("rb-2");

    const back = await rollbackRules(kv, undefined, new Date().toISOString());
    expect(back.ok && [back.from, back.pointer.version]).toEqual(["rb-2", "rb-1"]);
    await refreshDue();

    expect(await servedVersion()).toBe("rb-1");
    expect(await status()).toMatchObject({ version: "rb-1", hash: v1, lastError: null });
  });
});

describe("GET /_ns/v1/rules caching", () => {
  it("sends the content hash as a strong ETag and answers a matching If-None-Match with 304", async () => {
    const hash = await publish("etag-1");
    const first = await request("/_ns/v1/rules", { headers: ADMIN });
    expect(first.res.headers.get("etag")).toBe(`"${hash}"`);

    const same = await request("/_ns/v1/rules", { headers: { ...ADMIN, "if-none-match": `"${hash}"` } });
    expect(same.res.status).toBe(304);
    expect(same.body).toBe("");

    await publish("etag-2");
    await refreshDue();
    const changed = await request("/_ns/v1/rules", { headers: { ...ADMIN, "if-none-match": `"${hash}"` } });
    expect(changed.res.status).toBe(200);
    expect(JSON.parse(changed.body).version).toBe("etag-2");
    expect(changed.res.headers.get("etag")).not.toBe(`"${hash}"`);
  });

  it("a 304 still needs the admin token", async () => {
    const hash = await publish("etag-auth");
    const { res } = await request("/_ns/v1/rules", { headers: { "if-none-match": `"${hash}"` } });
    expect(res.status).toBe(401);
  });
});

describe("a cold isolate whose RULES namespace does not answer", () => {
  it("serves the bundled rules within the store deadline and says so; the load lands for the next request", async () => {
    await publish("2026.12.01-1");
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slowRules = {
      get: async (key: string, options: unknown) => {
        await held;
        return env.RULES.get(key, options as "json");
      },
    };
    const bindings = { ...env, RULES: slowRules, STORE_DEADLINE_MS: "30" } as unknown as Env;
    const ctx = createExecutionContext();
    const res = await handle(
      new Request("https://shop.test/", { headers: { "user-agent": BROWSER_UA } }),
      bindings,
      ctx,
    );
    const body = await res.text();
    // Answered while KV still had not: the rules bundled at build time, and the header says so.
    expect(res.status).toBe(200);
    expect(res.headers.get("x-northstar-rules")).toBe(bundledDocument.version);
    expect(res.headers.get("x-northstar-fail-open")).toContain("rules-bundled");
    expect(body).toContain("First time here?");
    release();
    await waitOnExecutionContext(ctx);
    expect(await servedVersionWith(bindings)).toBe("2026.12.01-1");
  });
});

describe("RULES_SOURCE=file (npm start)", () => {
  it("serves the rules file built into the worker even when another version is published, and never reads KV", async () => {
    await publish("2026.12.02-1");
    expect(await servedVersionWith(env)).toBe("2026.12.02-1");
    resetRulesCache();
    const reads: string[] = [];
    const watchedRules = {
      get: (key: string, options: unknown) => {
        reads.push(key);
        return env.RULES.get(key, options as "json");
      },
    };
    const fromFile = { ...env, RULES: watchedRules, RULES_SOURCE: "file" } as unknown as Env;
    expect(await servedVersionWith(fromFile)).toBe(bundledDocument.version);
    expect(reads).toEqual([]);
  });
});

async function servedVersionWith(bindings: Env): Promise<string | null> {
  const { res } = await request("/", {}, bindings);
  return res.headers.get("x-northstar-rules");
}
