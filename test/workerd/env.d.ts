// Types for `cloudflare:workers` in the workerd tests. The bindings of wrangler.toml come from the
// generated worker-configuration.d.ts; here only what the tests add: the worker's default export,
// the small rate limiter vitest.config.ts binds for the rate-limit tests, and the load test's size.
declare namespace Cloudflare {
  interface Env {
    TEST_LIMIT_3: RateLimit;
    /** How many people the journeys load test sends at once (150; `npm run test:load`: 1,000). */
    LOAD_TEST_PEOPLE: string;
  }
  interface Exports {
    default: Fetcher;
  }
}
