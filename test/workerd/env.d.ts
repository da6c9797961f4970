// Types for `cloudflare:workers` in the workerd tests: the bindings of wrangler.toml and the
// worker's default export.
type NorthstarEnv = import("../../src/edge/env.ts").Env;

declare namespace Cloudflare {
  interface Env extends NorthstarEnv {}
  interface Exports {
    default: Fetcher;
  }
}
