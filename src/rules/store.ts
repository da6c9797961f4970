import { z } from "zod";
import { type CompiledRules, compileRules } from "./compile.ts";
import type { RulesDocument } from "./schema.ts";
import { hashRules, parseRules, type RulesProblem } from "./validate.ts";

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
  publishedAt: z.string(),
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
  | { readonly reason: "bad_pointer"; readonly detail: string }
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
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, error: { reason: "bad_pointer", detail: issuesText(parsed.error) } };
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
  const hash = await hashRules(parsed.rules);
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
      return `rules:active is malformed: ${f.detail}`;
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

export type PublishPlan =
  | { ok: true; writes: readonly KvWrite[]; unchanged: boolean }
  | { ok: false; message: string };

/**
 * What a publish writes, in order: the immutable version (unless it is already there with the same
 * content), the history, and the `rules:active` pointer last so readers never see half a publish.
 * Pure, so the CLI and tests share it; `existing` is the current value of `rules:v:<version>`.
 */
export function planPublish(
  doc: RulesDocument,
  hash: string,
  existing: unknown,
  history: unknown,
  publishedAt: string,
): PublishPlan {
  const prior = StoredVersionSchema.safeParse(decodeJson(existing));
  if (existing !== null && existing !== undefined && prior.success && prior.data.hash !== hash) {
    return {
      ok: false,
      message: `version ${doc.version} is already published with other content (${prior.data.hash.slice(0, 12)}): published versions are immutable; bump "version"`,
    };
  }
  const writes: KvWrite[] = [];
  const unchanged = prior.success;
  if (!unchanged) writes.push({ key: versionKey(doc.version), value: { hash, publishedAt, doc } });
  const past = HistorySchema.safeParse(decodeJson(history));
  const entries = (past.success ? past.data : []).filter((h) => h.version !== doc.version);
  const entry: ActivePointer = { version: doc.version, hash, publishedAt };
  entries.push(entry);
  writes.push({ key: HISTORY_KEY, value: entries.slice(-HISTORY_LIMIT) });
  writes.push({ key: ACTIVE_KEY, value: entry });
  return { ok: true, writes, unchanged };
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
  const past = HistorySchema.safeParse(decodeJson(history));
  const entries = past.success ? past.data : [];
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
