import { Hono } from "hono";
import { routePath } from "hono/route";
import { BEACON_VERSION, beaconScript } from "../edge/beacon.ts";
import { hasOrigin, readConfig } from "../platform/config.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { activeRules } from "../state/rules-loader.ts";
import { registerAdminRoutes } from "./admin-routes.ts";
import type { AppEnv } from "./app-env.ts";
import { registerBackfillRoutes } from "./backfill.ts";
import { registerDecideRoutes } from "./decide.ts";
import { jsonError } from "./errors.ts";
import { registerStateRoutes } from "./events.ts";
import { registerIdentityRoutes } from "./identify.ts";
import { registerJourneyRoutes } from "./journeys.ts";
import { openApiDocument } from "./openapi.ts";
import { servePage } from "./page.ts";
import { registerProfileRoutes } from "./profiles.ts";
import { badGateway } from "./proxy.ts";

export const VERSION = "0.1.0";

/** The routes under the reserved prefix. Built once per prefix; the prefix comes from config. */
function buildApi(prefix: string): Hono<AppEnv> {
  const api = new Hono<AppEnv>().basePath(prefix);
  api.get("/health", async (c) => {
    const { problems } = readConfig(c.env);
    const rules = await activeRules(c.env, c.executionCtx);
    return c.json({
      status: "ok",
      version: VERSION,
      rulesVersion: rules?.version ?? null,
      rulesSource: rules?.source ?? null,
      // By name, with what is wrong and what is used instead; never a value (secrets are vars too).
      configProblems: problems,
    });
  });

  // The beacon: a versioned URL cached for a year, and an unversioned one that always points at it.
  const beacon = beaconScript({ prefix });
  api.get(`/ns.${BEACON_VERSION}.js`, () => {
    return new Response(beacon, {
      headers: {
        "content-type": "text/javascript; charset=utf-8",
        "cache-control": "public, max-age=31536000, immutable",
      },
    });
  });
  // The plain URL, and any other version (a page cached with an older tag), point at the current one.
  api.get("/ns.js", (c) => c.redirect(`${prefix}/ns.${BEACON_VERSION}.js`, 302));
  api.get("/:script{ns\\.[0-9a-z]+\\.js}", (c) => c.redirect(`${prefix}/ns.${BEACON_VERSION}.js`, 302));

  api.get("/openapi.json", (c) => c.json(openApiDocument(readConfig(c.env).config, VERSION)));
  registerAdminRoutes(api);
  registerStateRoutes(api);
  registerBackfillRoutes(api);
  registerIdentityRoutes(api);
  registerProfileRoutes(api);
  registerJourneyRoutes(api);
  registerDecideRoutes(api);
  api.notFound(() => jsonError("not_found", "no such Northstar route"));
  // One error boundary for the API: log the detail, answer a generic message, never a stack trace.
  // The route's pattern, never the path: paths carry ids and emails (/v1/profiles/user:ana@…).
  api.onError((err, c) => {
    log("error", "api_error", { method: c.req.method, route: routePath(c), error: String(err) });
    return jsonError("internal_error", "something went wrong on our side");
  });
  return api;
}

/**
 * Every (method, path) the API registers under `prefix`, as Hono lists them (`:id`, `:name{regex}`),
 * middleware included: test/workerd/openapi.test.ts fails on any the OpenAPI document leaves out.
 */
export function registeredRoutes(prefix: string): ReadonlyArray<RegisteredRoute> {
  // Hono's own test for middleware (as `inspectRoutes` in hono/dev): a handler that takes `next`.
  return buildApi(prefix).routes.map((r) => ({
    method: r.method,
    path: r.path,
    middleware: r.handler.length > 1,
  }));
}
export interface RegisteredRoute {
  readonly method: string;
  readonly path: string;
  readonly middleware: boolean;
}

/** The API built per configured prefix: one per deployment; bounded all the same. */
const apis = new Map<string, Hono<AppEnv>>();
const MAX_APIS = 4;

export async function handle(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  /** The request's URL, when the caller has parsed it already (once per request is enough). */
  url: URL = new URL(request.url),
): Promise<Response> {
  const parsed = readConfig(env);
  const { config } = parsed;
  const path = url.pathname;
  const prefix = config.NS_PREFIX;
  if (path === prefix || path.startsWith(`${prefix}/`)) {
    let api = apis.get(prefix);
    if (!api) {
      api = buildApi(prefix);
      if (apis.size >= MAX_APIS) apis.clear();
      apis.set(prefix, api);
    }
    return api.fetch(request, env, ctx);
  }
  // A bad ORIGIN has no stand-in: pages answer 502, as /_ns/health and the log say, even where a
  // service binding (the demo's under `npm start`, the tests') would answer anything.
  if (!hasOrigin(parsed)) return badGateway();
  // ORIGIN_SERVICE is bound only by the demo environment and the tests; it stands in for ORIGIN.
  return servePage(request, url, env, ctx, config, { origin: originOf(config), service: env.ORIGIN_SERVICE });
}

const origins = new WeakMap<object, URL>();
/** The configured origin, parsed once per configuration (a fresh copy is made wherever one is changed). */
function originOf(config: { readonly ORIGIN: string }): URL {
  let origin = origins.get(config);
  if (!origin) {
    origin = new URL(config.ORIGIN);
    origins.set(config, origin);
  }
  return origin;
}
