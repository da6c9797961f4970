// Types for `cloudflare:workers` in the workerd tests: the bindings of wrangler.toml and the
// worker's default export.
declare namespace Cloudflare {
  interface Env extends import("../../src/edge/env.ts").Env {}
  interface Exports {
    default: Fetcher;
  }
}
