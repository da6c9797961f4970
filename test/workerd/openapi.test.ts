import { beforeAll, describe, expect, it } from "vitest";
import { BEACON_VERSION } from "../../src/edge/beacon.ts";
import { PreviewResponseSchema, RulesStatusSchema } from "../../src/http/admin-routes.ts";
import { registeredRoutes, VERSION } from "../../src/http/app.ts";
import { ExperimentResultsSchema } from "../../src/http/experiment-results.ts";
import { HealthSchema, openApiDocument } from "../../src/http/openapi.ts";
import { ConfigSchema } from "../../src/platform/config.ts";
import { ADMIN, visit } from "./helpers.ts";

// The test environment's prefix (wrangler.toml).
const PREFIX = "/_ns";

interface Operation {
  operationId?: string;
  summary?: string;
  tags?: string[];
}
interface Document {
  openapi: string;
  servers?: Array<{ url: string }>;
  info: { license?: { name: string; identifier?: string } };
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, { name?: string }> };
}

/**
 * Routes Hono registers under a name the document does not use, each with the path that documents
 * it. The beacon's current script and every other version are one templated path, `ns.{version}.js`
 * (the current one answers 200, the others redirect to it).
 */
const DOCUMENTED_AS: Readonly<Record<string, string>> = {
  [`${PREFIX}/ns.${BEACON_VERSION}.js`]: `${PREFIX}/ns.{version}.js`,
  [`${PREFIX}/:script{ns\\.[0-9a-z]+\\.js}`]: `${PREFIX}/ns.{version}.js`,
};

/** Documented paths no Hono route has by that name, each with the registered route that serves it. */
const SERVED_BY: Readonly<Record<string, string>> = {
  [`${PREFIX}/v1/experiments/global-holdout`]: `${PREFIX}/v1/experiments/:id`,
};

/** Hono's path as an OpenAPI path template: `:id` and `:name{regex}` segments become `{id}`, `{name}`. */
function asOpenApiPath(honoPath: string): string {
  const documented = DOCUMENTED_AS[honoPath];
  if (documented) return documented;
  return honoPath
    .split("/")
    .map((segment) => {
      if (segment.includes("*") || segment.endsWith("?")) {
        throw new Error(`${honoPath}: wildcard and optional segments have no single OpenAPI path`);
      }
      return segment.startsWith(":") ? `{${segment.slice(1).split("{")[0]}}` : segment;
    })
    .join("/");
}

function operations(doc: Document): Array<{ key: string; path: string; operation: Operation }> {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({
      key: `${method.toUpperCase()} ${path}`,
      path,
      operation,
    })),
  );
}

let doc: Document;
beforeAll(async () => {
  const res = await visit(`${PREFIX}/openapi.json`);
  expect(res.status).toBe(200);
  doc = (await res.json()) as Document;
});

describe("the OpenAPI document at /_ns/openapi.json", () => {
  it("documents every route the API registers, and every documented operation is one the API serves", () => {
    const routes = registeredRoutes(PREFIX);
    // Middleware (admin checks) guards routes; it is not an operation of its own.
    for (const r of routes.filter((r) => r.middleware)) expect(r.method, r.path).toBe("ALL");
    const endpoints = routes.filter((r) => !r.middleware);
    for (const honoPath of Object.keys(DOCUMENTED_AS)) {
      expect(
        endpoints.map((r) => r.path),
        "a stale DOCUMENTED_AS entry",
      ).toContain(honoPath);
    }
    const served = new Set(endpoints.map((r) => `${r.method} ${asOpenApiPath(r.path)}`));
    const documented = new Set(operations(doc).map((o) => o.key));
    expect(
      [...served].filter((op) => !documented.has(op)),
      "served but not documented",
    ).toEqual([]);

    const servedHono = new Set(endpoints.map((r) => `${r.method} ${r.path}`));
    const notServed = operations(doc).filter(({ key, path }) => {
      if (served.has(key)) return false;
      const by = SERVED_BY[path];
      return !(by && servedHono.has(`${key.split(" ")[0]} ${by}`));
    });
    expect(
      notServed.map((o) => o.key),
      "documented but not served",
    ).toEqual([]);
    // The routes this document was once missing.
    expect([...documented]).toEqual(
      expect.arrayContaining([
        `GET ${PREFIX}/health`,
        `GET ${PREFIX}/openapi.json`,
        `GET ${PREFIX}/ns.js`,
        `GET ${PREFIX}/ns.{version}.js`,
        `GET ${PREFIX}/v1/rules`,
        `GET ${PREFIX}/v1/experiments/{id}`,
        `GET ${PREFIX}/v1/experiments/global-holdout`,
        `POST ${PREFIX}/v1/preview`,
      ]),
    );
  });

  it("gives every operation a unique operationId, a summary and a tag", () => {
    const ops = operations(doc);
    const missing = ops.filter(({ operation: o }) => !o.operationId || !o.summary || !o.tags?.length);
    expect(missing.map((o) => o.key)).toEqual([]);
    const ids = ops.map((o) => o.operation.operationId);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
  });

  it("names its server, its licence, and the cookie the worker actually sets", async () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.servers).toEqual([expect.objectContaining({ url: "/" })]);
    expect(doc.info.license?.identifier).toBe("LicenseRef-Proprietary");
    const page = await visit("/");
    await page.arrayBuffer();
    const cookie = page.headers.getSetCookie().map((c) => c.split("=")[0]);
    expect(cookie).toContain(doc.components.securitySchemes.visitorCookie?.name);
  });

  it("follows the configuration: its prefix in every path, its cookie's name", () => {
    const config = ConfigSchema.parse({
      ORIGIN: "https://shop.test",
      NS_PREFIX: "/edge",
      COOKIE_NAME: "shopper",
    });
    const other = openApiDocument(config, VERSION) as unknown as Document;
    expect(Object.keys(other.paths).length).toBe(Object.keys(doc.paths).length);
    expect(Object.keys(other.paths).every((p) => p.startsWith("/edge/"))).toBe(true);
    // Secure with no domain: the browser only keeps it as a __Host- cookie.
    expect(other.components.securitySchemes.visitorCookie?.name).toBe("__Host-shopper");
    const plain = ConfigSchema.parse({
      ORIGIN: "https://shop.test",
      COOKIE_SECURE: "false",
      COOKIE_NAME: "shopper",
    });
    expect(
      (openApiDocument(plain, VERSION) as unknown as Document).components.securitySchemes.visitorCookie?.name,
    ).toBe("shopper");
  });

  it("is built once per configuration, not per request", () => {
    const config = ConfigSchema.parse({ ORIGIN: "https://shop.test" });
    expect(openApiDocument(config, VERSION)).toBe(openApiDocument(config, VERSION));
  });

  it("describes what the health, rules, experiment and preview routes really answer", async () => {
    HealthSchema.parse(await (await visit(`${PREFIX}/health`)).json());
    RulesStatusSchema.parse(await (await visit(`${PREFIX}/v1/rules`, { headers: ADMIN })).json());
    ExperimentResultsSchema.parse(
      await (await visit(`${PREFIX}/v1/experiments/hero-test`, { headers: ADMIN })).json(),
    );
    const preview = await visit(`${PREFIX}/v1/preview`, {
      method: "POST",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ path: "/running" }),
    });
    PreviewResponseSchema.parse(await preview.json());
  });
});
