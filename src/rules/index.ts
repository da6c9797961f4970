/** The rules model's public surface: parse, validate, hash, compile, and the KV storage helpers. */
export type {
  CompiledContent,
  CompiledExperience,
  CompiledExperiment,
  CompiledPlacement,
} from "../core/compiled-rules.ts";
export type { EvalScope, Test, Trace } from "../core/scope.ts";
export type { CompiledRules, PageSlot, PageSlots } from "./compile.ts";
export { compileRules, pageMatcher } from "./compile.ts";
export { countedTypes, newlyCounted } from "./counted-types.ts";
export { parseDuration } from "./duration.ts";
export { MESSAGE_CHANNELS, type MessageChannel } from "./journey-schema.ts";
export type {
  CompiledJourney,
  CompiledJourneys,
  CompiledMessaging,
  CompiledStep,
  CompiledTrigger,
} from "./journeys.ts";
export { layerMoves } from "./layers.ts";
export type {
  Condition,
  Content,
  Experience,
  Experiment,
  Placement,
  RulesDocument,
  RulesDocumentInput,
} from "./schema.ts";
export { GLOBAL_HOLDOUT, MAJOR_VERSION, RulesDocumentSchema, rulesJsonSchema, SCHEMA_ID } from "./schema.ts";
export { isSupportedSelector } from "./selector.ts";
export type {
  ActivePointer,
  History,
  KvWrite,
  LoadedVersion,
  LoadFailure,
  LoadResult,
  PublishPlan,
  PublishStamp,
  RulesKv,
  StoredVersion,
} from "./store.ts";
export {
  ACTIVE_KEY,
  ActivePointerSchema,
  contentHash,
  describeLoadFailure,
  HISTORY_KEY,
  HistorySchema,
  listRules,
  loadRulesFromKvValue,
  parsePointer,
  planPublish,
  planRollback,
  publishRules,
  rollbackRules,
  StoredVersionSchema,
  stampRules,
  VERSION_KEY_PREFIX,
  versionKey,
} from "./store.ts";
export type { ParseResult, RulesProblem } from "./validate.ts";
export { hashCanonicalJson, hashRules, parseRules } from "./validate.ts";
