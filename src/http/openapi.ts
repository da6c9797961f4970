import * as z from "zod";

/**
 * The OpenAPI 3.1 document, generated from the same zod schemas the routes validate with, so the
 * description cannot drift from what the worker accepts. Each route module registers itself here.
 */
export interface RouteDoc {
  readonly method: "get" | "post" | "put" | "delete";
  /** OpenAPI path template, relative to the prefix: `/v1/profiles/{id}`. */
  readonly path: string;
  readonly summary: string;
  readonly tag: string;
  readonly admin?: boolean;
  readonly server?: boolean;
  readonly body?: z.ZodType;
  readonly bodyContentTypes?: readonly string[];
  readonly query?: z.ZodObject;
  readonly responses: Readonly<Record<number, { readonly description: string; readonly schema?: z.ZodType }>>;
}

const routes: RouteDoc[] = [];

export function documentRoute(route: RouteDoc): void {
  if (!routes.some((r) => r.method === route.method && r.path === route.path)) routes.push(route);
}

export const ErrorBodySchema = z.object({
  error: z.string().describe("machine-readable code, e.g. invalid_request"),
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

export function openApiDocument(prefix: string, version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const parameters: unknown[] = [];
    for (const match of r.path.matchAll(/\{([^}]+)\}/g)) {
      parameters.push({ name: match[1], in: "path", required: true, schema: { type: "string" } });
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
    for (const [status, res] of Object.entries(r.responses)) {
      responses[status] = res.schema
        ? {
            description: res.description,
            content: { "application/json": { schema: schemaOf(res.schema, "output") } },
          }
        : { description: res.description };
    }
    responses["400"] ??= {
      description: "invalid request: each bad field named",
      content: { "application/json": { schema: schemaOf(ErrorBodySchema, "output") } },
    };
    const security = r.admin
      ? [{ adminToken: [] }]
      : r.server
        ? [{ serverKey: [] }, { visitorCookie: [] }]
        : [];
    const operation: Record<string, unknown> = {
      summary: r.summary,
      tags: [r.tag],
      parameters,
      responses,
      security,
    };
    if (r.body) {
      const content: Record<string, unknown> = {};
      for (const type of r.bodyContentTypes ?? ["application/json"])
        content[type] = { schema: schemaOf(r.body, "input") };
      operation.requestBody = { required: true, content };
    }
    const path = `${prefix}${r.path}`;
    paths[path] = { ...paths[path], [r.method]: operation };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Northstar",
      version,
      description: "Real-time 1:1 personalization at the edge: decisions, events, identity and profiles.",
    },
    paths,
    components: {
      securitySchemes: {
        adminToken: { type: "http", scheme: "bearer", description: "ADMIN_TOKEN" },
        serverKey: { type: "http", scheme: "bearer", description: "SERVER_API_KEY, for server-side senders" },
        visitorCookie: {
          type: "apiKey",
          in: "cookie",
          name: "__Host-ns_vid",
          description: "signed visitor id",
        },
      },
    },
  };
}
