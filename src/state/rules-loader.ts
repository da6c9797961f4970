import bundledDocument from "../../rules/northstar.rules.json";
import { readConfig } from "../platform/config.ts";
import { withDeadline } from "../platform/deadline.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { type CompiledRules, compileRules, hashRules, parseRules } from "../rules/index.ts";
import {
  ACTIVE_KEY,
  describeLoadFailure,
  loadRulesFromKvValue,
  parsePointer,
  versionKey,
} from "../rules/store.ts";

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

let active: LoadedRules | null = null;
let checkedAt = 0;
let lastError: string | null = null;
let refreshing: Promise<void> | null = null;
let bundled: LoadedRules | null | undefined;

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

const unreachable = (what: string, read: { reason: string; error?: string }): string =>
  `${what} unreadable (${read.reason}${read.error ? `: ${read.error}` : ""})`;

/**
 * One check of KV. Loading itself is `loadRulesFromKvValue` (src/rules/store.ts), the function the
 * store tests cover: pointer shape, stored value, document, version and both hashes. Only the reads
 * (with their deadline) and the isolate's cache live here.
 */
async function refresh(env: Env): Promise<void> {
  const started = Date.now();
  const pointerRead = await withDeadline(() => env.RULES.get(ACTIVE_KEY, "json"), KV_DEADLINE_MS);
  checkedAt = started;
  if (!pointerRead.ok) {
    lastError = unreachable("rules pointer", pointerRead);
    return;
  }
  const pointer = parsePointer(pointerRead.value);
  if (!pointer.ok) {
    // Nothing published yet is not an error while the bundled rules serve; a pointer that vanished
    // from under a KV version is one worth reporting.
    lastError =
      pointer.error.reason === "no_pointer" && active?.source !== "kv"
        ? null
        : describeLoadFailure(pointer.error);
    return;
  }
  const { version, hash } = pointer.value;
  if (active?.source === "kv" && active.version === version && active.hash === hash) {
    lastError = null;
    return;
  }
  // Versions are immutable, so the edge cache may keep them for a long time.
  const stored = await withDeadline(
    () => env.RULES.get(versionKey(version), { type: "json", cacheTtl: 3600 }),
    KV_DEADLINE_MS,
  );
  if (!stored.ok) {
    lastError = unreachable(`rules version ${version}`, stored);
    return;
  }
  const loaded = await loadRulesFromKvValue(pointerRead.value, stored.value);
  if (!loaded.ok) {
    lastError = describeLoadFailure(loaded.error);
    return;
  }
  active = {
    compiled: loaded.value.compiled,
    version: loaded.value.pointer.version,
    hash: loaded.value.hash,
    loadedAt: Date.now(),
    source: "kv",
  };
  lastError = null;
}

/**
 * The rules this isolate already holds from KV, when no refresh is due: what a request may decide
 * from at once, without waiting a turn. Null otherwise, and for the bundled file (RULES_SOURCE=file):
 * the caller then asks `activeRules`, which also starts a due refresh.
 */
export function heldRules(env: Env): LoadedRules | null {
  if (!active || readConfig(env).config.RULES_SOURCE === "file") return null;
  return Date.now() - checkedAt < REFRESH_MS ? active : null;
}

/**
 * The rules for this request. Never throws. The first request of an isolate waits for KV (under a
 * deadline) or falls back to the bundled rules; later ones never wait.
 */
export async function activeRules(
  env: Env,
  ctx?: { waitUntil(promise: Promise<unknown>): void },
  coldWaitMs: number = KV_DEADLINE_MS,
): Promise<LoadedRules | null> {
  // RULES_SOURCE=file: the rules file as built into this worker, KV never read.
  if (readConfig(env).config.RULES_SOURCE === "file") {
    const rules = await loadBundled();
    checkHistory(rules, env);
    return rules;
  }
  const now = Date.now();
  if (now - checkedAt >= REFRESH_MS && !refreshing) {
    refreshing = refresh(env)
      .catch((err: unknown) => {
        lastError = `rules refresh failed: ${err instanceof Error ? err.message : String(err)}`;
      })
      .finally(() => {
        refreshing = null;
      });
    ctx?.waitUntil(refreshing);
  }
  // A cold isolate waits for KV no longer than the caller's store deadline: past it, the bundled
  // rules serve this request and the load finishes in the background for the next one.
  if (!active && refreshing) await withDeadline(refreshing, coldWaitMs);
  const rules = active ?? (await loadBundled());
  checkHistory(rules, env);
  return rules;
}

let historyChecked: LoadedRules | null = null;

/**
 * The validator holds countWithin windows to the rules' settings.historyDays, but only this worker
 * knows how long its event log keeps events: rules that count further back than that would read a
 * customer active before as silent. Said once per loaded version, as a config problem.
 */
function checkHistory(rules: LoadedRules | null, env: Env): void {
  if (rules === null || rules === historyChecked) return;
  historyChecked = rules;
  const logDays = readConfig(env).config.EVENT_LOG_MAX_AGE_DAYS;
  const historyDays = rules.compiled.settings.historyDays;
  if (historyDays > logDays)
    log("warn", "config_problem", {
      name: "EVENT_LOG_MAX_AGE_DAYS",
      message: `rules ${rules.version} count up to ${historyDays} days back (settings.historyDays) but the event log keeps ${logDays}: older events are gone and count as none`,
    });
}

/** True when the bundled rules serve because KV has not answered (yet) or failed, not because nothing was published. */
export function servingFallback(rules: LoadedRules | null): boolean {
  return rules?.source === "bundled" && (refreshing !== null || lastError !== null);
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
  historyChecked = null;
}
