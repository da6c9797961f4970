/**
 * The pure engine's public surface: decide() and the shapes it reads and returns. Nothing here
 * touches a binding or the clock; the edge adapts KV, the visitor's object and the request to it.
 */
export type {
  CandidateTrace,
  Decision,
  DecisionInput,
  DecisionResult,
  LossReason,
  Reason,
} from "./decide.ts";
export { decide, LOSS_REASONS, REASONS } from "./decide.ts";
export type {
  Channel,
  ChannelEngagement,
  Consent,
  DeviceClass,
  IntentScore,
  Millis,
  RequestContext,
  Traits,
  VisitorEvent,
  VisitorState,
} from "./model.ts";
