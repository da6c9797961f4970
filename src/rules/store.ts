import * as z from "zod";
import { type CompiledRules, compileRules } from "./compile.ts";
import type { RulesDocument } from "./schema.ts";
import { hashCanonicalJson, hashRules, parseRules, type RulesProblem } from "./validate.ts";

/**
 * How published rules live in the RULES KV namespace (docs/rules.md has the table with JSON
 * examples), and the pure half of loading them: the edge reads the two KV values (with its deadline
 * and isolate cache) and hands them here; this validates the pointer and the version document,
 * checks the content hash, and compiles. Expected failures are values, never exceptions.
 */

/** The pointer readers follow; written last by a publish or a rollback. */
export const ACTIVE_KEY = "rules:active";
/** Every publish, oldest first, the last 100: what `list` shows and `rollback` picks from. */
export const HISTORY_KEY = "rules:history";
export const VERSION_KEY_PREFIX = "rules:v:";
/** The immutable key of one published version. */
export const versionKey = (version: string): string => `${VERSION_KEY_PREFIX}${version}`;
export const HISTORY_LIMIT = 100;

const Hash = z.string().regex(/^[0-9a-f]{64}$/, "a SHA-256 hex digest");
const Version = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/);

export const ActivePointerSchema = z.object({
  version: Version,
  hash: Hash,
  // Informational: the CLI always writes it, but a reader needs only version and hash to load.
  publishedAt: z.string().optional(),
});
export type ActivePointer = z.infer<typeof ActivePointerSchema>;

export const HistoryEntrySchema = ActivePointerSchema;
export const HistorySchema = z.array(HistoryEntrySchema);
export type History = z.infer<typeof HistorySchema>;

/** `rules:v:<version>`: the document as published, with its hash. */
export const StoredVersionSchema = z.object({
  hash: Hash,
  publishedAt: z.string(),
  doc: z.unknown(),
});
export type StoredVersion = z.infer<typeof StoredVersionSchema>;

export type LoadFailure =
  | { readonly reason: "no_pointer" }
  | { readonly reason: "bad_pointer"; readonly detail: string; readonly version?: string }
  | { readonly reason: "missing_version"; readonly version: string }
  | { readonly reason: "bad_version_value"; readonly version: string; readonly detail: string }
  | { readonly reason: "invalid_rules"; readonly version: string; readonly errors: readonly RulesProblem[] }
  | {
      readonly reason: "hash_mismatch";
      readonly version: string;
      readonly expected: string;
      readonly actual: string;
    };

export interface LoadedVersion {
  readonly pointer: ActivePointer;
  readonly rules: RulesDocument;
  readonly hash: string;
  readonly compiled: CompiledRules;
}

export type LoadResult = { ok: true; value: LoadedVersion } | { ok: false; error: LoadFailure };

const issuesText = (error: z.ZodError): string =>
  error.issues.map((i) => `${i.path.join(".") || "(value)"}: ${i.message}`).join("; ");

/** Parses `rules:active` as read from KV (JSON-decoded, or the raw string). */
export function parsePointer(
  value: unknown,
): { ok: true; value: ActivePointer } | { ok: false; error: LoadFailure } {
  if (value === null || value === undefined) return { ok: false, error: { reason: "no_pointer" } };
  const decoded = decodeJson(value);
  const parsed = ActivePointerSchema.safeParse(decoded);
  if (parsed.success) return { ok: true, value: parsed.data };
  // The version a broken pointer names is what an operator looks for first.
  const named = (decoded as { version?: unknown } | null)?.version;
  return {
    ok: false,
    error: {
      reason: "bad_pointer",
      detail: issuesText(parsed.error),
      ...(typeof named === "string" ? { version: named.slice(0, 64) } : {}),
    },
  };
}

function decodeJson(value: unknown): unknown {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/**
 * The pure loader: `pointer` is the value of `rules:active`, `versionValue` the value of
 * `rules:v:<pointer.version>` (objects as `get(key, "json")` returns them, or raw strings). The
 * document must parse, and its recomputed hash must equal both the pointer's and the stored one.
 * Compiles once; the caller keeps the result in isolate memory.
 *
 * @example
 * const pointer = await env.RULES.get(ACTIVE_KEY, "json");
 * const stored = pointer && (await env.RULES.get(versionKey(pointer.version), "json"));
 * const loaded = await loadRulesFromKvValue(pointer, stored);
 * if (loaded.ok) cache = loaded.value.compiled; // else keep the last known good version
 */
export async function loadRulesFromKvValue(pointer: unknown, versionValue: unknown): Promise<LoadResult> {
  const p = parsePointer(pointer);
  if (!p.ok) return p;
  const { version } = p.value;
  if (versionValue === null || versionValue === undefined)
    return { ok: false, error: { reason: "missing_version", version } };
  const stored = StoredVersionSchema.safeParse(decodeJson(versionValue));
  if (!stored.success)
    return { ok: false, error: { reason: "bad_version_value", version, detail: issuesText(stored.error) } };
  const parsed = parseRules(stored.data.doc);
  if (!parsed.ok) return { ok: false, error: { reason: "invalid_rules", version, errors: parsed.errors } };
  if (parsed.rules.version !== version) {
    return {
      ok: false,
      error: {
        reason: "bad_version_value",
        version,
        detail: `the stored document says version ${parsed.rules.version}`,
      },
    };
  }
  // Over the document as stored, not as re-parsed: see hashCanonicalJson.
  const hash = await hashCanonicalJson(stored.data.doc);
  for (const expected of [p.value.hash, stored.data.hash]) {
    if (expected !== hash) {
      return { ok: false, error: { reason: "hash_mismatch", version, expected, actual: hash } };
    }
  }
  return {
    ok: true,
    value: { pointer: p.value, rules: parsed.rules, hash, compiled: compileRules(parsed.rules, hash) },
  };
}

/** One line for logs and the admin status route. */
export function describeLoadFailure(f: LoadFailure): string {
  switch (f.reason) {
    case "no_pointer":
      return "no rules published (rules:active is empty)";
    case "bad_pointer":
      return `rules:active${f.version === undefined ? "" : ` (version ${f.version})`} is malformed: ${f.detail}`;
    case "missing_version":
      return `rules version ${f.version} is missing from KV`;
    case "bad_version_value":
      return `rules version ${f.version} is malformed: ${f.detail}`;
    case "invalid_rules":
      return `rules version ${f.version} is invalid: ${f.errors
        .slice(0, 3)
        .map((e) => `${e.path}: ${e.message}`)
        .join("; ")}`;
    case "hash_mismatch":
      return `rules version ${f.version} does not match its published hash (${f.expected.slice(0, 12)} ≠ ${f.actual.slice(0, 12)})`;
  }
}

export type KvWrite = { readonly key: string; readonly value: unknown };

/**
 * What the store needs from KV, so the CLI (through wrangler) and the tests share one decision
 * path. A read tells "not found" (`value: null`) apart from a failure: treating a failed read as
 * "not there" would let a publish overwrite an immutable version or reset the history.
 */
export interface RulesKv {
  get(key: string): Promise<{ ok: true; value: unknown } | { ok: false; error: string }>;
  put(key: string, value: unknown): Promise<{ ok: true } | { ok: false; error: string }>;
}

/** Where a published document came from, stamped into `meta` before it is hashed. */
export interface PublishStamp {
  readonly generatedAt: string;
  /** The commit published from; a stale sha written in the file is dropped when unknown. */
  readonly gitSha?: string | undefined;
}

export function stampRules(doc: RulesDocument, stamp: PublishStamp): RulesDocument {
  const { gitSha: _stale, ...meta } = doc.meta;
  return {
    ...doc,
    meta: { ...meta, generatedAt: stamp.generatedAt, ...(stamp.gitSha ? { gitSha: stamp.gitSha } : {}) },
  };
}

/**
 * The hash of a document without its publish stamp: "the same content" for immutability, so that
 * publishing an unchanged file again (a later commit, another time) is not refused.
 */
export function contentHash(doc: RulesDocument): Promise<string> {
  const { generatedAt: _at, gitSha: _sha, ...meta } = doc.meta;
  return hashRules({ ...doc, meta });
}

export type PublishPlan =
  | { ok: true; writes: readonly KvWrite[]; unchanged: boolean; version: string; hash: string }
  | { ok: false; message: string };

/**
 * What a publish writes, in order: the immutable version (unless it is already there with the same
 * content), the history, and the `rules:active` pointer last so readers never see half a publish.
 * `existing` and `history` are the current values of `rules:v:<version>` and `rules:history`
 * (null when absent). Anything already stored that cannot be read as what it should be is refused,
 * never overwritten. The result is checked with the edge's own loader before anything is written.
 */
export async function planPublish(
  doc: RulesDocument,
  existing: unknown,
  history: unknown,
  stamp: PublishStamp,
  publishedAt: string,
): Promise<PublishPlan> {
  const version = doc.version;
  const writes: KvWrite[] = [];
  let stored: StoredVersion;
  let unchanged = false;
  if (existing !== null && existing !== undefined) {
    const prior = StoredVersionSchema.safeParse(decodeJson(existing));
    const priorDoc = prior.success ? parseRules(prior.data.doc) : null;
    if (!prior.success || !priorDoc?.ok) {
      return {
        ok: false,
        message: `${versionKey(version)} already holds something that is not a valid published version: refusing to overwrite it; bump "version"`,
      };
    }
    if ((await contentHash(priorDoc.rules)) !== (await contentHash(doc))) {
      return {
        ok: false,
        message: `version ${version} is already published with other content (${prior.data.hash.slice(0, 12)}): published versions are immutable; bump "version"`,
      };
    }
    stored = prior.data;
    unchanged = true;
  } else {
    const stamped = stampRules(doc, stamp);
    stored = { hash: await hashRules(stamped), publishedAt, doc: stamped };
    writes.push({ key: versionKey(version), value: stored });
  }
  let past: History = [];
  if (history !== null && history !== undefined) {
    const parsed = HistorySchema.safeParse(decodeJson(history));
    if (!parsed.success) {
      return {
        ok: false,
        message: `${HISTORY_KEY} is malformed (${issuesText(parsed.error)}): refusing to replace it`,
      };
    }
    past = parsed.data;
  }
  const entry: ActivePointer = { version, hash: stored.hash, publishedAt };
  const loadable = await loadRulesFromKvValue(entry, stored);
  if (!loadable.ok) {
    return { ok: false, message: `the worker would refuse it: ${describeLoadFailure(loadable.error)}` };
  }
  const entries = [...past.filter((h) => h.version !== version), entry];
  writes.push({ key: HISTORY_KEY, value: entries.slice(-HISTORY_LIMIT) });
  writes.push({ key: ACTIVE_KEY, value: entry });
  return { ok: true, writes, unchanged, version, hash: stored.hash };
}

/** Carries out writes in order, stopping at the first failure so the pointer never moves ahead. */
async function applyWrites(
  kv: RulesKv,
  writes: readonly KvWrite[],
): Promise<{ ok: true } | { ok: false; message: string }> {
  for (const [i, w] of writes.entries()) {
    const put = await kv.put(w.key, w.value);
    if (!put.ok) {
      const done = writes.slice(0, i).map((x) => x.key);
      return {
        ok: false,
        message: `writing ${w.key} failed (${put.error})${done.length ? `; already written: ${done.join(", ")}` : ""}; ${ACTIVE_KEY} was not moved`,
      };
    }
  }
  return { ok: true };
}

async function read(
  kv: RulesKv,
  key: string,
): Promise<{ ok: true; value: unknown } | { ok: false; message: string }> {
  const r = await kv.get(key);
  return r.ok ? r : { ok: false, message: `cannot read ${key} (${r.error}): nothing was written` };
}

/** `npm run rules -- publish`: reads what is stored, plans, and writes version, history, pointer. */
export async function publishRules(
  kv: RulesKv,
  doc: RulesDocument,
  stamp: PublishStamp,
  publishedAt: string,
): Promise<{ ok: true; version: string; hash: string; unchanged: boolean } | { ok: false; message: string }> {
  const existing = await read(kv, versionKey(doc.version));
  if (!existing.ok) return existing;
  const history = await read(kv, HISTORY_KEY);
  if (!history.ok) return history;
  const plan = await planPublish(doc, existing.value, history.value, stamp, publishedAt);
  if (!plan.ok) return plan;
  const written = await applyWrites(kv, plan.writes);
  if (!written.ok) return written;
  return { ok: true, version: plan.version, hash: plan.hash, unchanged: plan.unchanged };
}

/**
 * The pointer a rollback writes: the named version, or the latest one in history before the active
 * one. Only the pointer moves; versions are never rewritten.
 */
export function planRollback(
  history: unknown,
  active: unknown,
  target: string | undefined,
  at: string,
): { ok: true; pointer: ActivePointer; from: string | null } | { ok: false; message: string } {
  const past = HistorySchema.safeParse(decodeJson(history ?? []));
  if (!past.success) return { ok: false, message: `${HISTORY_KEY} is malformed: ${issuesText(past.error)}` };
  const entries = past.data;
  const current = parsePointer(active);
  const from = current.ok ? current.value.version : null;
  let chosen: ActivePointer | undefined;
  if (target !== undefined) {
    chosen = entries.findLast((h) => h.version === target);
    if (!chosen) return { ok: false, message: `version ${target} was never published` };
  } else {
    const index = entries.findLastIndex((h) => h.version === from);
    const before = (index >= 0 ? entries.slice(0, index) : entries).filter((h) => h.version !== from);
    chosen = before.at(-1);
    if (!chosen) return { ok: false, message: "no earlier version to roll back to" };
  }
  return { ok: true, pointer: { version: chosen.version, hash: chosen.hash, publishedAt: at }, from };
}

/**
 * `npm run rules -- rollback`: moves the pointer, but only to a version the worker would load
 * (the same `loadRulesFromKvValue` the edge runs), so a rollback cannot strand the fleet on its
 * last known good version.
 */
export async function rollbackRules(
  kv: RulesKv,
  target: string | undefined,
  at: string,
): Promise<{ ok: true; pointer: ActivePointer; from: string | null } | { ok: false; message: string }> {
  const history = await read(kv, HISTORY_KEY);
  if (!history.ok) return history;
  const active = await read(kv, ACTIVE_KEY);
  if (!active.ok) return active;
  const plan = planRollback(history.value, active.value, target, at);
  if (!plan.ok) return plan;
  const stored = await read(kv, versionKey(plan.pointer.version));
  if (!stored.ok) return stored;
  const loadable = await loadRulesFromKvValue(plan.pointer, stored.value);
  if (!loadable.ok) {
    return {
      ok: false,
      message: `refusing to roll back to ${plan.pointer.version}: ${describeLoadFailure(loadable.error)}`,
    };
  }
  const written = await applyWrites(kv, [{ key: ACTIVE_KEY, value: plan.pointer }]);
  return written.ok ? plan : written;
}

/** `npm run rules -- list`: the history and the active version, or why they cannot be read. */
export async function listRules(
  kv: RulesKv,
): Promise<{ ok: true; history: History; active: string | null } | { ok: false; message: string }> {
  const history = await read(kv, HISTORY_KEY);
  if (!history.ok) return history;
  const active = await read(kv, ACTIVE_KEY);
  if (!active.ok) return active;
  const past = HistorySchema.safeParse(decodeJson(history.value ?? []));
  if (!past.success) return { ok: false, message: `${HISTORY_KEY} is malformed: ${issuesText(past.error)}` };
  const pointer = parsePointer(active.value);
  return { ok: true, history: past.data, active: pointer.ok ? pointer.value.version : null };
}
