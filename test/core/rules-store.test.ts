import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ACTIVE_KEY,
  describeLoadFailure,
  HISTORY_KEY,
  hashCanonicalJson,
  hashRules,
  loadRulesFromKvValue,
  parseRules,
  planRollback,
  publishRules,
  type RulesDocument,
  type RulesKv,
  rollbackRules,
  versionKey,
} from "../../src/rules/index.ts";

/** The pure half of publishing and loading rules through KV (docs/rules.md, "Storage"). */
const ROOT = new URL("../..", import.meta.url).pathname;
const demo = JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8"));
const AT = "2026-11-22T10:00:00.000Z";

async function published(version = "2026.11.22-1") {
  const parsed = parseRules({ ...demo, version });
  if (!parsed.ok) throw new Error("demo rules should parse");
  const hash = await hashRules(parsed.rules);
  return { doc: parsed.rules, hash, pointer: { version, hash, publishedAt: AT } };
}

describe("loading a published version from KV values", () => {
  it("accepts a pointer and its version (objects or raw JSON strings), compiled once", async () => {
    const { doc, hash, pointer } = await published();
    const stored = { hash, publishedAt: AT, doc };
    for (const [p, v] of [
      [pointer, stored],
      [JSON.stringify(pointer), JSON.stringify(stored)],
    ] as const) {
      const r = await loadRulesFromKvValue(p, v);
      if (!r.ok) throw new Error(describeLoadFailure(r.error));
      expect(r.value.hash).toBe(hash);
      expect(r.value.compiled.version).toBe(doc.version);
      expect(r.value.compiled.placementsForPath("/")).toContain("home-hero");
    }
  });

  it("refuses a document whose content does not match the published hash", async () => {
    const { doc, hash, pointer } = await published();
    const tampered = structuredClone(doc) as RulesDocument;
    tampered.experiences[0]!.priority = 99;
    const r = await loadRulesFromKvValue(pointer, { hash, publishedAt: AT, doc: tampered });
    expect(r.ok ? null : r.error.reason).toBe("hash_mismatch");
    if (!r.ok) expect(describeLoadFailure(r.error)).toMatch(/does not match its published hash/);
  });

  it("a version published before a setting had a default still loads, with today's default filled in", async () => {
    const { doc } = await published();
    // As an older release wrote it: the same document without a field the schema later defaulted.
    const older = structuredClone(doc) as { settings: Record<string, unknown> };
    delete older.settings.historyDays;
    const hash = await hashCanonicalJson(older);
    const r = await loadRulesFromKvValue(
      { version: doc.version, hash, publishedAt: AT },
      { hash, publishedAt: AT, doc: older },
    );
    if (!r.ok) throw new Error(describeLoadFailure(r.error));
    expect(r.value.hash).toBe(hash);
    expect(r.value.rules.settings.historyDays).toBe(30);
  });

  it("names every other way a KV value can be wrong", async () => {
    const { doc, hash, pointer } = await published();
    const cases: Array<[unknown, unknown, string]> = [
      [null, null, "no_pointer"],
      [{ version: "x" }, null, "bad_pointer"],
      ["not json", null, "bad_pointer"],
      [pointer, null, "missing_version"],
      [pointer, { doc }, "bad_version_value"],
      [pointer, { hash, publishedAt: AT, doc: { ...doc, version: "other" } }, "bad_version_value"],
      [pointer, { hash, publishedAt: AT, doc: { version: "2026.11.22-1", placements: 3 } }, "invalid_rules"],
      [
        pointer,
        { hash, publishedAt: AT, doc: { ...doc, $schema: "https://northstar.dev/schemas/rules/v2.json" } },
        "invalid_rules",
      ],
    ];
    for (const [p, v, reason] of cases) {
      const r = await loadRulesFromKvValue(p, v);
      expect(r.ok ? "ok" : r.error.reason, JSON.stringify(p)).toBe(reason);
      if (!r.ok) expect(describeLoadFailure(r.error).length).toBeGreaterThan(0);
    }
  });
});

/**
 * A RULES namespace in memory, as the CLI's wrangler adapter presents it: reads of listed keys fail
 * (a network error, an expired token), writes are recorded in order and can fail too.
 */
function memoryKv(initial: Record<string, unknown> = {}, faults: { read?: string[]; write?: string[] } = {}) {
  const data = new Map(Object.entries(initial).map(([k, v]) => [k, JSON.parse(JSON.stringify(v))]));
  const writes: string[] = [];
  const kv: RulesKv = {
    async get(key) {
      if (faults.read?.includes(key)) return { ok: false, error: "503 Service Unavailable" };
      return { ok: true, value: data.has(key) ? structuredClone(data.get(key)) : null };
    },
    async put(key, value) {
      if (faults.write?.includes(key)) return { ok: false, error: "429 Too Many Requests" };
      writes.push(key);
      data.set(key, JSON.parse(JSON.stringify(value)));
      return { ok: true };
    },
  };
  return { kv, data, writes };
}

const STAMP = { generatedAt: AT, gitSha: "0123456789abcdef0123456789abcdef01234567" };

describe("publishing and rolling back", () => {
  it("writes the version, then the history, and flips the pointer last", async () => {
    const { doc } = await published();
    const { kv, data, writes } = memoryKv();
    const done = await publishRules(kv, doc, STAMP, AT);
    if (!done.ok) throw new Error(done.message);
    expect(writes).toEqual([versionKey(doc.version), HISTORY_KEY, ACTIVE_KEY]);
    expect(data.get(ACTIVE_KEY)).toEqual({ version: doc.version, hash: done.hash, publishedAt: AT });
    // What was written is what the edge loads, hash checks included.
    const loaded = await loadRulesFromKvValue(data.get(ACTIVE_KEY), data.get(versionKey(doc.version)));
    expect(loaded.ok && loaded.value.rules.meta).toMatchObject({ generatedAt: AT, gitSha: STAMP.gitSha });
  });

  it("stamps meta.generatedAt and meta.gitSha before hashing; without a sha, a stale one is dropped", async () => {
    const { doc } = await published();
    const stale = { ...doc, meta: { ...doc.meta, gitSha: "stale" } };
    const { kv, data } = memoryKv();
    const done = await publishRules(kv, stale, { generatedAt: AT }, AT);
    if (!done.ok) throw new Error(done.message);
    const stored = data.get(versionKey(doc.version)) as { doc: RulesDocument; hash: string };
    expect(stored.doc.meta.generatedAt).toBe(AT);
    expect(stored.doc.meta.gitSha).toBeUndefined();
    expect(stored.hash).toBe(await hashRules(stored.doc));
    expect(stored.hash).not.toBe(await hashRules(doc));
  });

  it.each([versionKey("2026.11.22-1"), HISTORY_KEY])(
    "a failed read of %s refuses the publish and writes nothing",
    async (key) => {
      const first = await published();
      const before = {
        [versionKey(first.doc.version)]: { hash: first.hash, publishedAt: AT, doc: first.doc },
      };
      const { kv, writes } = memoryKv(before, { read: [key] });
      const changed = structuredClone(first.doc) as RulesDocument;
      changed.experiences[0]!.priority = 99;
      const done = await publishRules(kv, changed, STAMP, AT);
      expect(done.ok ? "published" : done.message).toMatch(new RegExp(`cannot read ${key}.*503`));
      expect(writes).toEqual([]);
    },
  );

  it("refuses other content under a published version, and anything unreadable stored there", async () => {
    const a = await published();
    const changed = structuredClone(a.doc) as RulesDocument;
    changed.experiences[0]!.priority = 99;
    const stored = { hash: a.hash, publishedAt: AT, doc: a.doc };
    const taken = memoryKv({ [versionKey(a.doc.version)]: stored });
    const refused = await publishRules(taken.kv, changed, STAMP, AT);
    expect(refused.ok ? "published" : refused.message).toMatch(/immutable/);
    expect(taken.writes).toEqual([]);

    for (const junk of [
      "not json",
      { doc: a.doc },
      { hash: a.hash, publishedAt: AT, doc: { placements: 1 } },
    ]) {
      const { kv, writes } = memoryKv({ [versionKey(a.doc.version)]: junk });
      const r = await publishRules(kv, a.doc, STAMP, AT);
      expect(r.ok ? "published" : r.message).toMatch(/refusing to overwrite/);
      expect(writes).toEqual([]);
    }
  });

  it("republishing the same content at another time or commit moves only the pointer", async () => {
    const a = await published();
    const { kv, data, writes } = memoryKv();
    const first = await publishRules(kv, a.doc, STAMP, AT);
    const later = "2026-11-23T09:00:00.000Z";
    const again = await publishRules(kv, a.doc, { generatedAt: later, gitSha: "f".repeat(40) }, later);
    expect(again.ok && again.unchanged).toBe(true);
    expect(again.ok && first.ok && again.hash === first.hash).toBe(true);
    expect(writes).toEqual([versionKey(a.doc.version), HISTORY_KEY, ACTIVE_KEY, HISTORY_KEY, ACTIVE_KEY]);
    expect((data.get(versionKey(a.doc.version)) as { publishedAt: string }).publishedAt).toBe(AT);
  });

  it("a malformed history is refused rather than reset", async () => {
    const { doc } = await published();
    const { kv, writes } = memoryKv({ [HISTORY_KEY]: { not: "a list" } });
    const r = await publishRules(kv, doc, STAMP, AT);
    expect(r.ok ? "published" : r.message).toMatch(/rules:history is malformed/);
    expect(writes).toEqual([]);
  });

  it("a failed version write leaves the pointer where it was", async () => {
    const { doc } = await published();
    const { kv, data, writes } = memoryKv({}, { write: [versionKey(doc.version)] });
    const r = await publishRules(kv, doc, STAMP, AT);
    expect(r.ok ? "published" : r.message).toMatch(/rules:active was not moved/);
    expect(writes).toEqual([]);
    expect(data.has(ACTIVE_KEY)).toBe(false);
  });

  it("rolls back to the version before the active one, or to a named one", async () => {
    const v1 = (await published("v1")).pointer;
    const v2 = (await published("v2")).pointer;
    const v3 = (await published("v3")).pointer;
    const history = [v1, v2, v3];
    const back = planRollback(history, v3, undefined, AT);
    expect(back.ok && back.pointer.version).toBe("v2");
    const again = planRollback(history, back.ok ? back.pointer : null, undefined, AT);
    expect(again.ok && again.pointer.version).toBe("v1");
    expect(planRollback(history, v1, undefined, AT).ok).toBe(false);
    const named = planRollback(history, v1, "v3", AT);
    expect(named.ok && named.pointer).toEqual({ version: "v3", hash: v3.hash, publishedAt: AT });
    const unknown = planRollback(history, v3, "v9", AT);
    expect(unknown.ok ? "" : unknown.message).toMatch(/never published/);
  });

  it("a rollback moves only the pointer, and only to a version the worker would load", async () => {
    const { kv, data, writes } = memoryKv();
    for (const v of ["v1", "v2"]) {
      const r = await publishRules(kv, (await published(v)).doc, STAMP, AT);
      if (!r.ok) throw new Error(r.message);
    }
    writes.length = 0;
    const back = await rollbackRules(kv, undefined, AT);
    expect(back.ok && [back.from, back.pointer.version]).toEqual(["v2", "v1"]);
    expect(writes).toEqual([ACTIVE_KEY]);

    // v1's stored document no longer matches its hash: the worker would refuse it, so rollback does.
    const v1 = data.get(versionKey("v1")) as { doc: RulesDocument };
    v1.doc.experiences[0]!.priority = 99;
    writes.length = 0;
    const refused = await rollbackRules(kv, "v1", AT);
    expect(refused.ok ? "rolled back" : refused.message).toMatch(
      /refusing to roll back to v1: .*published hash/,
    );
    data.delete(versionKey("v1"));
    const missing = await rollbackRules(kv, "v1", AT);
    expect(missing.ok ? "rolled back" : missing.message).toMatch(/v1 is missing/);
    expect(writes).toEqual([]);

    const unreadable = memoryKv(Object.fromEntries(data), { read: [HISTORY_KEY] });
    const failed = await rollbackRules(unreadable.kv, "v2", AT);
    expect(failed.ok ? "rolled back" : failed.message).toMatch(/cannot read rules:history/);
    expect(unreadable.writes).toEqual([]);
  });
});
