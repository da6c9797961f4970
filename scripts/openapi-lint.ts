/**
 * `npm run lint:openapi`: Redocly's recommended rules over the OpenAPI document the worker serves
 * with the default configuration. Exits non-zero when Redocly reports an error.
 *
 * The document is registered by the route modules as the API is built, and those import the
 * Workers runtime (Durable Objects, bundled JSON), so it is not built in Node: the worker is bundled
 * as `wrangler deploy` would bundle it, run in a local workerd (Miniflare), and asked for
 * `/_ns/openapi.json`. Nothing here touches the network: no bindings but the defaults, Redocly's
 * telemetry and update notice off.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";

const ROOT = new URL("..", import.meta.url).pathname;
// The newest compatibility date the installed miniflare's workerd accepts (as in bench/workerd.ts).
const COMPAT = "2026-07-30";
const REDOCLY = join(ROOT, "node_modules/@redocly/cli/bin/cli.js");

/**
 * Warnings of the recommended rules that are true of the API and kept, each with why (as every
 * lint-disable says why). By rule, the JSON pointers of the parts they are ignored at.
 */
const ACCEPTED: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  "operation-4xx-response": {
    "#/paths/~1_ns~1health/get/responses": "takes no input and needs no credentials: it has no 4xx to give",
    "#/paths/~1_ns~1openapi.json/get/responses": "takes no input and needs no credentials: no 4xx either",
    "#/paths/~1_ns~1ns.js/get/responses": "only ever redirects to the versioned script",
  },
  "operation-2xx-response": {
    "#/paths/~1_ns~1ns.js/get/responses":
      "only ever redirects (302): the script itself is at ns.{version}.js",
  },
};

const work = mkdtempSync(join(tmpdir(), "northstar-openapi-"));
try {
  const outdir = join(work, "build");
  execFileSync(
    process.execPath,
    // `--env ""`: the top level of wrangler.toml, the worker alone.
    [
      join(ROOT, "node_modules/wrangler/bin/wrangler.js"),
      "deploy",
      "--dry-run",
      "--env",
      "",
      "--outdir",
      outdir,
    ],
    {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    },
  );

  // The default configuration: every variable at its default. ORIGIN has none; any URL serves here,
  // as the document does not depend on it.
  const mf = new Miniflare({
    modules: [{ type: "ESModule", path: join(outdir, "index.js") }],
    modulesRoot: outdir,
    compatibilityDate: COMPAT,
    compatibilityFlags: ["nodejs_compat"],
    bindings: { ORIGIN: "https://origin.invalid" },
    // Miniflare would otherwise fetch request.cf's data from workers.cloudflare.com.
    cf: false,
  });
  let document: string;
  try {
    const res = await mf.dispatchFetch("http://localhost/_ns/openapi.json");
    document = await res.text();
    if (res.status !== 200) throw new Error(`/_ns/openapi.json answered ${res.status}: ${document}`);
  } finally {
    await mf.dispose();
  }

  const file = join(work, "openapi.json");
  // Indented, so Redocly's excerpts show the lines a problem is on.
  writeFileSync(file, JSON.stringify(JSON.parse(document), null, 2));
  // Redocly reads its ignore file beside the linted file; YAML reads JSON. Keyed by the file's name.
  const ignored = Object.fromEntries(Object.entries(ACCEPTED).map(([rule, at]) => [rule, Object.keys(at)]));
  writeFileSync(
    join(work, ".redocly.lint-ignore.yaml"),
    JSON.stringify({ "openapi.json": ignored }, null, 2),
  );
  // Run from the temp directory, so no redocly.yaml anywhere near changes the rules.
  const lint = spawnSync(process.execPath, [REDOCLY, "lint", "--extends=recommended", file], {
    cwd: work,
    stdio: "inherit",
    env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" },
  });
  process.exitCode = lint.status ?? 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
