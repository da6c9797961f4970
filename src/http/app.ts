import { Hono } from "hono";
import { readConfig } from "../edge/config.ts";
import type { Env } from "../edge/env.ts";
import { jsonError } from "./errors.ts";
import { servePage } from "./page.ts";

export const VERSION = "0.1.0";

type AppEnv = { Bindings: Env };

/** The routes under the reserved prefix. Built once per prefix; the prefix comes from config. */
function buildApi(prefix: string): Hono<AppEnv> {
  const api = new Hono<AppEnv>().basePath(prefix);
  api.get("/health", (c) => {
    const { problems } = readConfig(c.env);
    return c.json({ status: "ok", version: VERSION, configProblems: problems.length });
  });
  api.notFound(() => jsonError(404, "not_found", "no such Northstar route"));
  // One error boundary for the API: log the detail, answer a generic message, never a stack trace.
  api.onError((err, c) => {
    console.log(JSON.stringify({ level: "error", msg: "api_error", path: c.req.path, error: String(err) }));
    return jsonError(500, "internal_error", "something went wrong on our side");
  });
  return api;
}

const apis = new Map<string, Hono<AppEnv>>();

export async function handle(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  const { config } = readConfig(env);
  const path = new URL(request.url).pathname;
  const prefix = config.NS_PREFIX;
  if (path === prefix || path.startsWith(`${prefix}/`)) {
    let api = apis.get(prefix);
    if (!api) {
      api = buildApi(prefix);
      apis.set(prefix, api);
    }
    return api.fetch(request, env, ctx);
  }
  return servePage(request, config, { origin: new URL(config.ORIGIN), service: env.ORIGIN_SERVICE });
}
