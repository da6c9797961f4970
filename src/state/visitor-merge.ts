import type { Millis, VisitorEvent } from "../core/model.ts";
import { emptyState, type StateLimits } from "../core/visitor-state.ts";
import type { CompiledRules } from "../rules/index.ts";
import { lazyTable } from "./lazy-tables.ts";
import { mergeVisitorState } from "./merge.ts";
import type { TokenSpend, VisitorDump } from "./visitor-object.ts";
import {
  addDeadLetter,
  deleteAllButAddress,
  type HeldVisitor,
  loggedIds,
  readDeadLetters,
  readSeenSince,
  rememberSeen,
  saveConsent,
  saveIdList,
  setMeta,
  storeEvent,
} from "./visitor-store.ts";

/**
 * The identity-merge protocol, in storage: what an anonymous visitor's object hands over (its dump),
 * how the known person's object folds it in (idempotent by merge id), what the anonymous object keeps
 * afterwards (a forwarding address), and the person's one-time identity tokens.
 */

/** Everything held; with `seenSince`, the event ids seen since then too (what a merge carries). */
export function dumpOf(sql: SqlStorage, held: HeldVisitor, seenSince?: Millis): VisitorDump {
  return {
    visitorId: held.state.visitorId,
    state: held.state,
    consent: held.consent,
    deadLetters: readDeadLetters(sql),
    mergedFrom: held.mergedFrom,
    ...(seenSince === undefined ? {} : { seen: readSeenSince(sql, seenSince) }),
  };
}

/**
 * Folds another visitor's dump into what `held` holds (see `mergeVisitorState`) and records the merge
 * id; the caller prunes and saves the state. Answers the number of events new to this object.
 */
export function foldDump(
  sql: SqlStorage,
  held: HeldVisitor,
  source: VisitorDump,
  mergeId: string,
  merge: { readonly now: Millis; readonly scoring: CompiledRules | null; readonly limits: StateLimits },
): number {
  const fresh: VisitorEvent[] = [];
  const duplicates: VisitorEvent[] = [];
  const logged = loggedIds(held.state);
  for (const event of source.state.events) (storeEvent(sql, event, logged) ? fresh : duplicates).push(event);
  rememberSeen(sql, source.seen ?? []);
  mergeVisitorState(
    held.state,
    source.state,
    fresh,
    duplicates,
    merge.now,
    merge.scoring?.dimensions ?? {},
    merge.limits,
  );
  for (const letter of source.deadLetters) addDeadLetter(sql, letter);
  // The known person's consent wins; the anonymous visitor's fills purposes it never answered.
  held.consent = { ...source.consent, ...held.consent };
  saveConsent(sql, held.consent);
  held.mergedFrom.push(mergeId, ...source.mergedFrom.filter((id) => !held.mergedFrom.includes(id)));
  saveIdList(sql, "mergedFrom", held.mergedFrom);
  return fresh.length;
}

/**
 * After the person's object took the history: only the forwarding address (and the experiments the
 * history carried, for a retried identify) stays. `handedAt` is the real clock: the address goes
 * IDLE_DELETE_MS later.
 */
export function keepOnlyAddress(
  sql: SqlStorage,
  held: HeldVisitor,
  experiments: readonly string[],
  handedAt: Millis,
): void {
  deleteAllButAddress(sql);
  saveIdList(sql, "handedExperiments", experiments);
  held.state = emptyState(held.state.visitorId);
  held.consent = {};
  held.consentAt = 0;
  held.mergedFrom = [];
  held.mergedAt = handedAt;
  setMeta(sql, "mergedAt", String(handedAt));
}

/** The person's used identity tokens: created by the first token spent (lazy-tables.ts). */
const spentTokenTable = lazyTable("spent_token", (sql) =>
  sql.exec("CREATE TABLE IF NOT EXISTS spent_token (id TEXT PRIMARY KEY, exp INTEGER NOT NULL)"),
);

/**
 * Records `tokenId` as used until `expiresAt`; `replayed` when it was used already. Runs without an
 * await, so two calls cannot both see the token unused. Expired ids are pruned on every write.
 */
export function spendToken(sql: SqlStorage, tokenId: string, expiresAt: Millis, now: Millis): TokenSpend {
  spentTokenTable.query(sql, "DELETE FROM spent_token WHERE exp < ?", now);
  if (spentTokenTable.query(sql, "SELECT 1 FROM spent_token WHERE id = ?", tokenId).length > 0)
    return "replayed";
  spentTokenTable.write(sql, "INSERT INTO spent_token (id, exp) VALUES (?, ?)", tokenId, expiresAt);
  return "spent";
}
