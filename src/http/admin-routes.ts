import type { Hono } from "hono";
import * as z from "zod";
import { isSitePath, signPreview } from "../edge/preview.ts";
import { readConfig } from "../platform/config.ts";
import { GLOBAL_HOLDOUT } from "../rules/index.ts";
import { activeRules, rulesStatus } from "../state/rules-loader.ts";
import { requireAdmin } from "./admin.ts";
import type { AppContext, AppEnv } from "./app-env.ts";
import { ExperimentResultsSchema, experimentResults } from "./experiment-results.ts";
import { documentRoute } from "./openapi.ts";
import { LIMITS, readBody } from "./request.ts";
import { storeUnavailableDoc } from "./store-calls.ts";

export const PreviewRequestSchema = z.object({
  /** Page to open in preview, on this site (`/`, `/running`): never a link to another host. */
  path: z
    .string()
    .max(2048)
    .refine(isSitePath, "a path on this site: one leading /, no //, no backslash, no whitespace")
    .default("/"),
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

// Response schemas, for the OpenAPI document; test/workerd/openapi.test.ts parses real answers with them.

export const PreviewResponseSchema = z.strictObject({
  token: z.string(),
  url: z.url().describe("the page with `ns_preview=<token>`: open it in the browser to preview"),
  expiresInSeconds: z.number().int(),
});
export type PreviewResponse = z.infer<typeof PreviewResponseSchema>;

export const RulesStatusSchema = z.strictObject({
  version: z.string().nullable(),
  hash: z.string().nullable(),
  source: z.enum(["kv", "bundled"]).nullable(),
  loadedAt: z.iso.datetime().nullable(),
  checkedAt: z.iso.datetime().nullable(),
  lastError: z.string().nullable(),
});
export type RulesStatusBody = z.infer<typeof RulesStatusSchema>;

/** RFC 9110 §13.1.2: a list of entity tags or `*`, compared weakly. */
function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(",").some((t) => {
    const tag = t.trim();
    return tag === "*" || tag.replace(/^W\//, "") === etag;
  });
}

/** GET /v1/rules: the serving rules, with an ETag a poller can send back. */
async function serveRulesStatus(c: AppContext): Promise<Response> {
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
}

/** POST /v1/preview: a signed link that opens a page with chosen experiences forced. */
async function createPreviewLink(c: AppContext): Promise<Response> {
  const { config } = readConfig(c.env);
  const parsed = await readBody(c.req.raw, LIMITS.smallBytes, PreviewRequestSchema);
  if (!parsed.ok) return parsed.response;
  const { path, forced, explain, ttlSeconds } = parsed.data;
  const token = await signPreview(config.ADMIN_TOKEN!, {
    forced,
    explain,
    exp: Math.floor(Date.now() / 1000) + ttlSeconds,
  });
  const url = new URL(path, c.req.url);
  url.searchParams.set("ns_preview", token);
  return c.json({ token, url: url.toString(), expiresInSeconds: ttlSeconds });
}

/** Admin routes: rules status, experiment results, preview links. All need the admin token. */
export function registerAdminRoutes(api: Hono<AppEnv>): void {
  api.use("/v1/rules", requireAdmin);
  api.use("/v1/experiments/*", requireAdmin);
  api.use("/v1/preview", requireAdmin);
  api.use("/v1/profiles/*", requireAdmin);
  api.use("/v1/explain", requireAdmin);

  api.get("/v1/rules", serveRulesStatus);
  api.get("/v1/experiments/:id", experimentResults);
  api.post("/v1/preview", createPreviewLink);

  documentRoute({
    method: "get",
    path: "/v1/rules",
    operationId: "getRulesStatus",
    tag: "admin",
    admin: true,
    summary: "The rules being served: version, content hash, where from, and the last refresh's error",
    responses: {
      200: {
        description: "the serving rules; the ETag is their hash while refreshes succeed",
        schema: RulesStatusSchema,
        headers: { ETag: "the serving version's content hash (absent while refreshes fail)" },
      },
      304: { description: "If-None-Match names the serving hash: nothing changed" },
    },
  });
  documentRoute({
    method: "get",
    path: "/v1/experiments/{id}",
    operationId: "getExperimentResults",
    tag: "admin",
    admin: true,
    summary:
      "An experiment's results per goal and arm: visitors, conversions, rate and value per visitor with 95% intervals, uplift, sample-ratio check; per ISO week and per day",
    params: { id: "the experiment's id in the active rules" },
    responses: {
      200: { description: "the report; the first variant is the control", schema: ExperimentResultsSchema },
      404: { description: "no such experiment in the active rules" },
      503: storeUnavailableDoc("read", true),
    },
  });
  // Served by /v1/experiments/{id}; documented apart because its arms are not the rules' variants.
  documentRoute({
    method: "get",
    path: `/v1/experiments/${GLOBAL_HOLDOUT}`,
    operationId: "getGlobalHoldoutResults",
    tag: "admin",
    admin: true,
    summary:
      "The programme's lift: everyone personalized against the visitors held out of every placement, per goal and per ISO week",
    responses: {
      200: {
        description: "two arms, `holdout` (the control) and `personalized`",
        schema: ExperimentResultsSchema,
      },
      404: { description: "the active rules set no settings.globalHoldout" },
      503: storeUnavailableDoc("read", true),
    },
  });
  documentRoute({
    method: "post",
    path: "/v1/preview",
    operationId: "createPreviewLink",
    tag: "admin",
    admin: true,
    summary: "A signed link that opens a page with chosen experiences forced, and the explain panel",
    body: PreviewRequestSchema,
    responses: { 200: { description: "the link and its token", schema: PreviewResponseSchema } },
  });
}
