import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ACTIVE_KEY,
  describeLoadFailure,
  HISTORY_KEY,
  hashRules,
  loadRulesFromKvValue,
  parseRules,
  planPublish,
  planRollback,
  type RulesDocument,
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
    ];
    for (const [p, v, reason] of cases) {
      const r = await loadRulesFromKvValue(p, v);
      expect(r.ok ? "ok" : r.error.reason, JSON.stringify(p)).toBe(reason);
      if (!r.ok) expect(describeLoadFailure(r.error).length).toBeGreaterThan(0);
    }
  });
});

describe("publishing and rolling back", () => {
  it("writes the version, then the history, and flips the pointer last", async () => {
    const { doc, hash } = await published();
    const plan = planPublish(doc, hash, null, null, AT);
    if (!plan.ok) throw new Error(plan.message);
    expect(plan.writes.map((w) => w.key)).toEqual([versionKey(doc.version), HISTORY_KEY, ACTIVE_KEY]);
    expect(plan.writes[2]!.value).toEqual({ version: doc.version, hash, publishedAt: AT });
    expect(plan.writes[0]!.value).toEqual({ hash, publishedAt: AT, doc });
  });

  it("never overwrites a published version with other content; republishing the same moves only the pointer", async () => {
    const a = await published();
    const b = await published("2026.11.22-1");
    const changed = structuredClone(b.doc) as RulesDocument;
    changed.experiences[0]!.priority = 99;
    const refused = planPublish(
      changed,
      await hashRules(changed),
      { hash: a.hash, publishedAt: AT, doc: a.doc },
      [],
      AT,
    );
    expect(refused.ok ? "" : refused.message).toMatch(/immutable/);
    const same = planPublish(a.doc, a.hash, { hash: a.hash, publishedAt: AT, doc: a.doc }, [], AT);
    expect(same.ok && same.unchanged).toBe(true);
    expect(same.ok && same.writes.map((w) => w.key)).toEqual([HISTORY_KEY, ACTIVE_KEY]);
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
});
