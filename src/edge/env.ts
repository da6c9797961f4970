import type { ExperimentDO } from "../measure/experiment-do.ts";
import type { VisitorDO } from "../state/visitor-do.ts";

/** The bindings the worker is deployed with (wrangler.toml). Vars and secrets are parsed by config.ts. */
export interface Env {
  readonly RULES: KVNamespace;
  readonly PROFILES: KVNamespace;
  readonly VISITOR: DurableObjectNamespace<VisitorDO>;
  /** One object per experiment: unique exposures and conversions per variant. */
  readonly EXPERIMENTS: DurableObjectNamespace<ExperimentDO>;
  /** Development and tests only: the origin as a service binding instead of the network. */
  readonly ORIGIN_SERVICE?: Fetcher;
  readonly [key: string]: unknown;
}
