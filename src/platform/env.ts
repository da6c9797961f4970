/**
 * The bindings the worker is deployed with, as `wrangler types` generates them from wrangler.toml
 * into worker-configuration.d.ts (committed, never edited by hand: `npm run types` rewrites it and
 * `npm run check` fails when it is stale). Vars and secrets arrive as strings and are parsed by
 * config.ts; a binding that only one environment has (the demo's ORIGIN_SERVICE) is optional.
 *
 * The generated type names the Durable Object classes (import("./src/index")) for their stubs; code
 * reaches the objects through their hand-typed RPC contracts (visitorObject, experimentObject).
 */
export type Env = Cloudflare.Env;
