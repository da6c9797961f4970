import type { Hono } from "hono";
import * as z from "zod";
import { analyzeExperiment } from "../core/stats.ts";
import { readConfig } from "../edge/config.ts";
import type { Env } from "../edge/env.ts";
import { signPreview } from "../edge/preview.ts";
import { activeRules, rulesStatus } from "../edge/rules-loader.ts";
import { experimentObject } from "../measure/experiment-do.ts";
import { GLOBAL_HOLDOUT } from "../rules/index.ts";
import { requireAdmin } from "./admin.ts";
import { invalidRequest, jsonError } from "./errors.ts";

type AppEnv = { Bindings: Env };

export const PreviewRequestSchema = z.object({
  /** Page to open in preview, relative to the site (`/`, `/running`). */
  path: z.string().startsWith("/").default("/"),
  forced: z
    .record(z.string(), z.object({ experience: z.string(), variant: z.string().optional() }))
    .default({}),
  explain: z.boolean().default(true),
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(7 * 86400)
    .default(3600),
});
export type PreviewRequest = z.infer<typeof PreviewRequestSchema>;

/** RFC 9110 §13.1.2: a list of entity tags or `*`, compared weakly. */
function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(",").some((t) => {
    const tag = t.trim();
    return tag === "*" || tag.replace(/^W\//, "") === etag;
  });
}

/** Admin routes: rules status, experiment results, preview links. All need the admin token. */
export function registerAdminRoutes(api: Hono<AppEnv>): void {
  api.use("/v1/rules", requireAdmin);
  api.use("/v1/experiments/*", requireAdmin);
  api.use("/v1/preview", requireAdmin);
  api.use("/v1/profiles/*", requireAdmin);
  api.use("/v1/explain", requireAdmin);

  api.get("/v1/rules", async (c) => {
    const loaded = await activeRules(c.env, c.executionCtx);
    const status = rulesStatus();
    // The ETag is the serving version's content hash. While refreshes fail there is none, so a
    // poller's If-None-Match never turns a new lastError into a 304.
    const etag = loaded && status.lastError === null ? `"${loaded.hash}"` : null;
    const headers: Record<string, string> = { "cache-control": "private, no-cache" };
    if (etag) headers.etag = etag;
    if (etag && ifNoneMatch(c.req.header("if-none-match"), etag)) return c.body(null, 304, headers);
    return c.json(
      {
        version: loaded?.version ?? null,
        hash: loaded?.hash ?? null,
        source: loaded?.source ?? null,
        loadedAt: loaded ? new Date(loaded.loadedAt).toISOString() : null,
        checkedAt: status.checkedAt ? new Date(status.checkedAt).toISOString() : null,
        lastError: status.lastError,
      },
      200,
      headers,
    );
  });

  api.get("/v1/experiments/:id", async (c) => {
    const id = c.req.param("id");
    const loaded = await activeRules(c.env, c.executionCtx);
    const experiment = loaded?.compiled.experiments[id];
    if (!experiment) return jsonError(404, "unknown_experiment", `no experiment "${id}" in the active rules`);
    const stub = experimentObject(c.env, id);
    const counts = await stub.counts();
    const byVariant = new Map(counts.map((a) => [a.variant, a]));
    const arm = (variant: string, weight: number, isControl: boolean) => ({
      id: variant,
      weight,
      exposures: byVariant.get(variant)?.exposures ?? 0,
      conversions: byVariant.get(variant)?.conversions ?? 0,
      isControl,
    });
    // The global holdout is the control of the whole program: held out against personalized.
    const arms =
      id === GLOBAL_HOLDOUT
        ? [arm("holdout", experiment.holdout, true), arm("personalized", 1 - experiment.holdout, false)]
        : experiment.variants.map((v, i) => arm(v.id, v.weight, i === 0));
    const holdout = byVariant.get("holdout");
    return c.json({
      experiment: id,
      goal: experiment.goal,
      rulesVersion: loaded?.version ?? null,
      holdout: holdout ? { exposures: holdout.exposures, conversions: holdout.conversions } : null,
      report: analyzeExperiment(arms),
    });
  });

  api.post("/v1/preview", async (c) => {
    const { config } = readConfig(c.env);
    const body = await c.req.json().catch(() => undefined);
    const parsed = PreviewRequestSchema.safeParse(body ?? {});
    if (!parsed.success) return invalidRequest(parsed.error);
    const { path, forced, explain, ttlSeconds } = parsed.data;
    const token = await signPreview(config.ADMIN_TOKEN!, {
      forced,
      explain,
      exp: Math.floor(Date.now() / 1000) + ttlSeconds,
    });
    const url = new URL(path, c.req.url);
    url.searchParams.set("ns_preview", token);
    return c.json({ token, url: url.toString(), expiresInSeconds: ttlSeconds });
  });
}
