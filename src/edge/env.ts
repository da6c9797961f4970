import type { ExperimentDO } from "../measure/experiment-do.ts";
import type { VisitorDO } from "../state/visitor-do.ts";

/** The bindings the worker is deployed with (wrangler.toml). Vars and secrets are parsed by config.ts. */
export interface Env {
  readonly RULES: KVNamespace;
  readonly PROFILES: KVNamespace;
  readonly VISITOR: DurableObjectNamespace<VisitorDO>;
  /** One object per experiment: unique exposures and conversions per variant. */
  readonly EXPERIMENTS: DurableObjectNamespace<ExperimentDO>;
  /**
   * Stands in for ORIGIN over a service binding instead of the network. Bound only by `npm start`
   * ([env.demo] in wrangler.toml: the demo shop) and the workerd tests, never at the top level,
   * so it cannot shadow an ORIGIN a user configures.
   */
  readonly ORIGIN_SERVICE?: Fetcher;
  // Write limits: `[[ratelimits]]` in wrangler.toml, in every environment (they are not inherited).
  // Each is optional: a deployment without one runs without that limit, logged once (http/limits.ts).
  /** Browsers' writes per client address (an IPv6 address by its /64). */
  readonly LIMIT_CLIENT_WRITES?: RateLimit;
  /** Writes per client address that carry no visitor cookie and no server key: each makes a new visitor. */
  readonly LIMIT_NEW_VISITORS?: RateLimit;
  /** Writes per server key (the API key or the admin token), whatever the address. */
  readonly LIMIT_SERVER_WRITES?: RateLimit;
  /** Every write, one key: the ceiling a flood from many addresses meets. */
  readonly LIMIT_ALL_WRITES?: RateLimit;
  readonly [key: string]: unknown;
}
