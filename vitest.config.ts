import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Four projects, told apart by folder: test/core runs the pure engine in Node; test/package installs
// the packed client and runs it on Node 20 and 22; test/browser drives real Chromium against
// `wrangler dev`; test/workerd runs the worker inside workerd with real KV and Durable Object bindings.
export default defineConfig({
  test: {
    projects: [
      {
        test: { name: "core", include: ["test/core/**/*.test.ts"], environment: "node" },
      },
      {
        // The packed client (`npm pack`) installed in a scratch project, run on Node 20 and 22.
        test: {
          name: "package",
          include: ["test/package/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
      {
        // Real Chromium against `wrangler dev`, as a shopper meets the demo.
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              // The test origin replaces the demo shop: a worker with the endpoints the proxy tests need.
              // It is also the journeys' webhook destination (its /outbox endpoints).
              serviceBindings: { ORIGIN_SERVICE: "test-origin", DESTINATION_SERVICE: "test-origin" },
              bindings: {
                // Tests judge what a visitor gets, not how fast a shared CI machine is: a store that
                // answers at all answers in time. The tests of deadlines set their own (store-faults,
                // rules-lifecycle, rate-limits...); production keeps wrangler.toml's 50 ms.
                STORE_DEADLINE_MS: "2000",
                // The journeys load test's crowd: 150 in `npm test`, 1,000 in `npm run test:load`.
                LOAD_TEST_PEOPLE: process.env.LOAD_TEST_PEOPLE ?? "150",
                WEBHOOK_SMS: "https://destination.test/outbox/sms",
                WEBHOOK_PUSH: "https://destination.test/outbox/push",
                WEBHOOK_EMAIL: "https://destination.test/outbox/email",
              },
              // A small limiter for test/workerd/rate-limits.test.ts, which stands it in for each write
              // limit in turn (wrangler.toml's own limits serve every other test as configured).
              ratelimits: { TEST_LIMIT_3: { namespace_id: "9001", simple: { limit: 3, period: 60 } } },
              // The export queue as wrangler.toml consumes it, but delivering within a second rather
              // than 5 s, so test/workerd/export-producer.test.ts waits less for the files.
              queueConsumers: {
                "northstar-export": {
                  maxBatchSize: 100,
                  maxBatchTimeout: 1,
                  maxRetries: 10,
                  deadLetterQueue: "northstar-export-dlq",
                },
              },
              workers: [
                {
                  name: "test-origin",
                  modules: true,
                  scriptPath: "./test/fixtures/origin.js",
                  compatibilityDate: "2026-11-02",
                },
              ],
            },
          }),
        ],
        // The first request of a file loads and transforms the whole worker (seconds on a busy machine).
        test: { name: "workerd", include: ["test/workerd/**/*.test.ts"], testTimeout: 20_000 },
      },
    ],
  },
});
