import bundledDocument from "../../rules/northstar.rules.json";
import { type CompiledRules, compileRules, hashRules, parseRules } from "../rules/index.ts";
import { ACTIVE_KEY, versionKey } from "../rules/store.ts";
import { withDeadline } from "./deadline.ts";
import type { Env } from "./env.ts";

/**
 * The active rules, held in isolate memory. KV holds immutable versions (`rules:v:<version>`) and
 * the `rules:active` pointer, flipped last by a publish. A request reads memory only; once the
 * memory copy is older than REFRESH_MS, the next request starts a background check of the pointer
 * (stale-while-revalidate). A new version is parsed, hash-checked and compiled once, here, never per
 * request. An unreachable KV or an invalid document leaves the last known good version in place;
 * with nothing loaded yet, the rules bundled at build time serve.
 */

const REFRESH_MS = 5_000;
const KV_DEADLINE_MS = 2_000;

export interface LoadedRules {
  readonly compiled: CompiledRules;
  readonly version: string;
  readonly hash: string;
  readonly loadedAt: number;
  readonly source: "kv" | "bundled";
}

export interface RulesStatus {
  readonly active: LoadedRules | null;
  readonly checkedAt: number;
  readonly lastError: string | null;
}

interface Pointer {
  version: string;
  hash: string;
}

let active: LoadedRules | null = null;
let checkedAt = 0;
let lastError: string | null = null;
let refreshing: Promise<void> | null = null;
let bundled: LoadedRules | null | undefined;

function isPointer(value: unknown): value is Pointer {
  const v = value as Pointer | null;
  return typeof v === "object" && v !== null && typeof v.version === "string" && typeof v.hash === "string";
}

async function loadBundled(): Promise<LoadedRules | null> {
  if (bundled !== undefined) return bundled;
  const parsed = parseRules(bundledDocument);
  if (!parsed.ok) {
    bundled = null;
    return null;
  }
  const hash = await hashRules(parsed.rules);
  bundled = {
    compiled: compileRules(parsed.rules, hash),
    version: parsed.rules.version,
    hash,
    loadedAt: Date.now(),
    source: "bundled",
  };
  return bundled;
}

async function refresh(env: Env): Promise<void> {
  const started = Date.now();
  const pointerRead = await withDeadline(env.RULES.get(ACTIVE_KEY, "json"), KV_DEADLINE_MS);
  checkedAt = started;
  if (!pointerRead.ok) {
    lastError = `rules pointer unreadable (${pointerRead.reason})`;
    return;
  }
  const pointer = pointerRead.value;
  if (pointer === null) {
    lastError = null;
    return;
  }
  if (!isPointer(pointer)) {
    lastError = "rules pointer is malformed";
    return;
  }
  if (active?.source === "kv" && active.hash === pointer.hash) {
    lastError = null;
    return;
  }
  // Versions are immutable, so the edge cache may keep them for a long time.
  const stored = await withDeadline(
    env.RULES.get<{ hash?: unknown; doc?: unknown }>(versionKey(pointer.version), {
      type: "json",
      cacheTtl: 3600,
    }),
    KV_DEADLINE_MS,
  );
  if (!stored.ok || stored.value === null) {
    lastError = `rules version ${pointer.version} unreadable`;
    return;
  }
  const parsed = parseRules(stored.value.doc);
  if (!parsed.ok) {
    lastError = `rules version ${pointer.version} is invalid: ${parsed.errors
      .slice(0, 3)
      .map((e) => `${e.path}: ${e.message}`)
      .join("; ")}`;
    return;
  }
  const hash = await hashRules(parsed.rules);
  if (hash !== pointer.hash) {
    lastError = `rules version ${pointer.version} does not match its published hash`;
    return;
  }
  active = {
    compiled: compileRules(parsed.rules, hash),
    version: pointer.version,
    hash,
    loadedAt: Date.now(),
    source: "kv",
  };
  lastError = null;
}

/**
 * The rules for this request. Never throws. The first request of an isolate waits for KV (under a
 * deadline) or falls back to the bundled rules; later ones never wait.
 */
export async function activeRules(
  env: Env,
  ctx?: { waitUntil(promise: Promise<unknown>): void },
): Promise<LoadedRules | null> {
  const now = Date.now();
  if (now - checkedAt >= REFRESH_MS && !refreshing) {
    refreshing = refresh(env)
      .catch((err: unknown) => {
        lastError = `rules refresh failed: ${err instanceof Error ? err.message : String(err)}`;
      })
      .finally(() => {
        refreshing = null;
      });
    if (active && ctx) ctx.waitUntil(refreshing);
  }
  if (!active && refreshing) await refreshing;
  return active ?? (await loadBundled());
}

/** What is serving now: the KV version, or the bundled one when KV has given nothing yet. */
export function rulesStatus(): RulesStatus {
  return { active: active ?? bundled ?? null, checkedAt, lastError };
}

/** Tests only: forget everything, as a fresh isolate would. */
export function resetRulesCache(): void {
  active = null;
  bundled = undefined;
  checkedAt = 0;
  lastError = null;
  refreshing = null;
}
