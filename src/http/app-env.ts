import type { Context } from "hono";
import type { Env } from "../platform/env.ts";

/** What every route of the API is typed with: the worker's bindings, and nothing set by middleware. */
export type AppEnv = { Bindings: Env };

/** A route handler's context. */
export type AppContext = Context<AppEnv>;
