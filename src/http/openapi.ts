import * as z from "zod";
import type { Config } from "../platform/config.ts";
import { cookieName } from "../state/visitor-id.ts";
import { ERROR_STATUS, type ErrorCode } from "./errors.ts";

/**
 * The OpenAPI 3.1 document, generated from the same zod schemas the routes validate with. Each route
 * module registers its routes' documentation here, beside the routes. That alone would not keep the
 * document honest: test/workerd/openapi.test.ts lists every route the Hono app serves and fails when
 * one is undocumented, or a documented one is not served, and `npm run lint:openapi` runs Redocly's
 * recommended rules over it. Together they are what keeps the description from drifting.
 */

/** Groups of operations, in the order a reader meets them; a route names one of these. */
const TAGS = {
  decisions: "Decisions for a visitor or a known person, per placement",
  events: "Behavioural events from browsers and servers",
  identity: "Linking anonymous visitors to known people",
  privacy: "Consent, export and erasure",
  profiles: "Traits imported from CRM or a warehouse",
  admin: "Rules status, experiment results, explanations and preview links",
  beacon: "The script the proxy injects into pages",
  service: "Health and this document",
} as const;
export type Tag = keyof typeof TAGS;

export interface ResponseDoc {
  readonly description: string;
  /** The body; error statuses (4xx/5xx) default to the one error shape every route answers with. */
  readonly schema?: z.ZodType;
  /** Defaults to `application/json`. */
  readonly contentType?: string;
  /** Response headers worth knowing, by name: their description (their values are strings). */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface RouteDoc {
  readonly method: "get" | "post" | "put" | "delete";
  /** OpenAPI path template, relative to the prefix: `/v1/profiles/{id}`. */
  readonly path: string;
  /** Unique across the document: what generated clients name the call. */
  readonly operationId: string;
  readonly summary: string;
  readonly tag: Tag;
  /** Needs `Authorization: Bearer <ADMIN_TOKEN>` (adds its 401 and 503 answers). */
  readonly admin?: boolean;
  /** A server with SERVER_API_KEY, or a browser with its own visitor cookie. */
  readonly server?: boolean;
  /** A server with SERVER_API_KEY, or an admin with ADMIN_TOKEN; nobody else (no cookie). */
  readonly serverOrAdmin?: boolean;
  readonly body?: z.ZodType;
  readonly bodyContentTypes?: readonly string[];
  readonly query?: z.ZodObject;
  /** What each `{name}` in `path` is, by name (every one is a required string either way). */
  readonly params?: Readonly<Record<string, string>>;
  readonly responses: Readonly<Record<number, ResponseDoc>>;
}

const routes: RouteDoc[] = [];

export function documentRoute(route: RouteDoc): void {
  if (!routes.some((r) => r.method === route.method && r.path === route.path)) routes.push(route);
}

/** The error body's shape, its codes taken from the one table of them (errors.ts's ERROR_STATUS). */
export const ErrorBodySchema = z.object({
  error: z
    .enum(Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]])
    .describe("machine-readable code, e.g. invalid_request"),
  message: z.string().optional(),
  issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

function schemaOf(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  // `unrepresentable: "any"` keeps transforms and refinements from making the whole document fail.
  return z.toJSONSchema(schema, { target: "draft-2020-12", io, unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
}

function responseOf(status: number, res: ResponseDoc): Record<string, unknown> {
  const schema = res.schema ?? (status >= 400 ? ErrorBodySchema : undefined);
  const out: Record<string, unknown> = { description: res.description };
  if (res.headers) {
    out.headers = Object.fromEntries(
      Object.entries(res.headers).map(([name, description]) => [
        name,
        { description, schema: { type: "string" } },
      ]),
    );
  }
  if (schema)
    out.content = { [res.contentType ?? "application/json"]: { schema: schemaOf(schema, "output") } };
  return out;
}

/** Answers every route of a kind gives, so no route can forget them. */
function commonResponses(r: RouteDoc): Record<number, ResponseDoc> {
  const common: Record<number, ResponseDoc> = {};
  // A JSON body or a query is parsed with its schema, and a mismatch is a 400 naming each bad field.
  const json = r.body && (r.bodyContentTypes ?? ["application/json"]).includes("application/json");
  if (json || r.query) common[400] = { description: "invalid request: each bad field named" };
  if (r.admin) {
    common[401] = { description: "no or wrong `Authorization: Bearer <ADMIN_TOKEN>`" };
    common[503] = { description: "ADMIN_TOKEN is not configured: admin routes are closed" };
  }
  return common;
}

function operationOf(r: RouteDoc): Record<string, unknown> {
  const parameters: unknown[] = [];
  for (const match of r.path.matchAll(/\{([^}]+)\}/g)) {
    const name = match[1]!;
    const description = r.params?.[name];
    parameters.push({
      name,
      in: "path",
      required: true,
      schema: { type: "string" },
      ...(description ? { description } : {}),
    });
  }
  if (r.query) {
    for (const [name, field] of Object.entries(r.query.shape)) {
      parameters.push({
        name,
        in: "query",
        required: !(field as z.ZodType).safeParse(undefined).success,
        schema: schemaOf(field as z.ZodType, "input"),
      });
    }
  }
  const responses: Record<string, unknown> = {};
  for (const [status, res] of Object.entries({ ...commonResponses(r), ...r.responses })) {
    responses[status] = responseOf(Number(status), res);
  }
  const operation: Record<string, unknown> = {
    operationId: r.operationId,
    summary: r.summary,
    tags: [r.tag],
    parameters,
    responses,
    // Public routes say so with an empty list: no credentials, rather than "not described".
    security: r.admin
      ? [{ adminToken: [] }]
      : r.serverOrAdmin
        ? [{ serverKey: [] }, { adminToken: [] }]
        : r.server
          ? [{ serverKey: [] }, { visitorCookie: [] }]
          : [],
  };
  if (r.body) {
    const content: Record<string, unknown> = {};
    for (const type of r.bodyContentTypes ?? ["application/json"])
      content[type] = { schema: schemaOf(r.body, "input") };
    operation.requestBody = { required: true, content };
  }
  return operation;
}

function buildDocument(config: Config, version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const sorted = [...routes].sort((a, b) => a.path.localeCompare(b.path));
  for (const r of sorted) {
    const path = `${config.NS_PREFIX}${r.path}`;
    paths[path] = { ...paths[path], [r.method]: operationOf(r) };
  }
  const used = new Set(routes.map((r) => r.tag));
  return {
    openapi: "3.1.0",
    info: {
      title: "Northstar",
      version,
      description: "Real-time 1:1 personalization at the edge: decisions, events, identity and profiles.",
      // The package is private and ships no licence: nothing is granted. SPDX has no identifier for
      // that, so it is named with SPDX's own escape hatch for licences outside its list.
      license: { name: "Proprietary: all rights reserved", identifier: "LicenseRef-Proprietary" },
    },
    // Paths carry the configured prefix, so the server is the site's root (relative to wherever this
    // document is served from): `/` + `/_ns/v1/decide` is the URL a client calls.
    servers: [
      { url: "/", description: `the site Northstar fronts; its own routes live under ${config.NS_PREFIX}` },
    ],
    tags: Object.entries(TAGS)
      .filter(([name]) => used.has(name as Tag))
      .map(([name, description]) => ({ name, description })),
    paths,
    components: {
      securitySchemes: {
        adminToken: { type: "http", scheme: "bearer", description: "ADMIN_TOKEN" },
        serverKey: { type: "http", scheme: "bearer", description: "SERVER_API_KEY, for server-side senders" },
        visitorCookie: {
          type: "apiKey",
          in: "cookie",
          name: cookieName(config),
          description: "the signed visitor id the proxy sets on pages",
        },
      },
    },
  };
}

const documents = new WeakMap<Config, Record<string, unknown>>();

/**
 * The document for one configuration (its prefix, its cookie's name), built on first use and kept:
 * config objects live as long as the isolate's `env`. Call it only once every route module has
 * registered (buildApi does before serving); `version` is the worker's, the same on every call.
 */
export function openApiDocument(config: Config, version: string): Record<string, unknown> {
  let doc = documents.get(config);
  if (!doc) {
    doc = buildDocument(config, version);
    documents.set(config, doc);
  }
  return doc;
}

// The routes app.ts serves itself (health, this document, the beacon); route modules document theirs.

/** What /health answers; test/workerd/openapi.test.ts parses a real answer with it. */
export const HealthSchema = z.strictObject({
  status: z.literal("ok"),
  version: z.string().describe("the worker's version"),
  rulesVersion: z.string().nullable().describe("the rules being served; null before any could load"),
  rulesSource: z.enum(["kv", "bundled"]).nullable(),
  configProblems: z
    .array(z.object({ name: z.string(), message: z.string(), usedInstead: z.string() }))
    .describe("bad configuration variables, by name (never their values), and what is used instead"),
});

documentRoute({
  method: "get",
  path: "/health",
  operationId: "getHealth",
  tag: "service",
  summary: "Liveness, the rules being served, and configuration problems",
  responses: { 200: { description: "the worker is serving", schema: HealthSchema } },
});

documentRoute({
  method: "get",
  path: "/openapi.json",
  operationId: "getOpenApiDocument",
  tag: "service",
  summary: "This document: the API as OpenAPI 3.1",
  responses: {
    200: { description: "the OpenAPI document", schema: z.record(z.string(), z.unknown()) },
  },
});

documentRoute({
  method: "get",
  path: "/ns.js",
  operationId: "getBeacon",
  tag: "beacon",
  summary: "The beacon script's stable URL: redirects to the current versioned script",
  responses: {
    302: { description: "to the current script", headers: { Location: "the current `ns.<version>.js`" } },
  },
});

documentRoute({
  method: "get",
  path: "/ns.{version}.js",
  operationId: "getVersionedBeacon",
  tag: "beacon",
  summary: "The beacon script at its content-versioned URL (cached for a year; other versions redirect)",
  params: {
    version: "the script's content version, lowercase letters and digits (the proxy's tag names it)",
  },
  responses: {
    200: {
      description: "the current script, `Cache-Control: public, max-age=31536000, immutable`",
      schema: z.string(),
      contentType: "text/javascript",
    },
    302: {
      description: "an older version (a page cached with an older tag): to the current script",
      headers: { Location: "the current `ns.<version>.js`" },
    },
    404: { description: "not a version (anything but lowercase letters and digits)" },
  },
});
