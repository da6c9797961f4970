import type { MiddlewareHandler } from "hono";
import { bearerIs } from "../platform/bearer.ts";
import { readConfig } from "../platform/config.ts";
import type { AppEnv } from "./app-env.ts";
import { jsonError } from "./errors.ts";

/** Admin routes need `Authorization: Bearer <ADMIN_TOKEN>`; without a configured token they are closed. */
export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  const { config } = readConfig(c.env);
  if (!config.ADMIN_TOKEN) return jsonError("admin_disabled", "ADMIN_TOKEN is not configured");
  if (!(await bearerIs(c.req.raw, config.ADMIN_TOKEN))) {
    return jsonError("unauthorized", "admin routes need Authorization: Bearer <ADMIN_TOKEN>");
  }
  await next();
};
