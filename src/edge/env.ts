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
  readonly [key: string]: unknown;
}
