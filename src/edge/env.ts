import type { VisitorDO } from "../state/visitor-do.ts";

/** The bindings the worker is deployed with (wrangler.toml). Vars and secrets are parsed by config.ts. */
export interface Env {
  readonly RULES: KVNamespace;
  readonly PROFILES: KVNamespace;
  readonly VISITOR: DurableObjectNamespace<VisitorDO>;
  /** Development and tests only: the origin as a service binding instead of the network. */
  readonly ORIGIN_SERVICE?: Fetcher;
  readonly [key: string]: unknown;
}
