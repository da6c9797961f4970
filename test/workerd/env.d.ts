// Types for `cloudflare:workers` in the workerd tests. The bindings of wrangler.toml come from the
// generated worker-configuration.d.ts; here only what the tests add: the worker's default export,
// and the small rate limiter vitest.config.ts binds for the rate-limit tests.
declare namespace Cloudflare {
  interface Env {
    TEST_LIMIT_3: RateLimit;
  }
  interface Exports {
    default: Fetcher;
  }
}
