import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// `northstar/client` as another project meets it: packed with `npm pack` (which builds it), installed
// from the tarball into a scratch project, imported by plain JavaScript on Node 20 and Node 22, and
// type-checked by a TypeScript consumer with tsc's default settings.

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;
const BIN = join(ROOT, "node_modules/.bin");
// npm and the prepack build run on the project's Node 22, whatever node comes first on PATH.
const env = { ...process.env, PATH: `${BIN}${delimiter}${process.env.PATH ?? ""}` };

async function versionOf(node: string): Promise<string | null> {
  try {
    return (await run(node, ["--version"])).stdout.trim();
  } catch {
    return null;
  }
}

/** The machine's Node 20: the first `node` on PATH (after the project's) or in /usr/bin that is v20. */
async function findNode20(): Promise<string | null> {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter((d) => d && d !== BIN), "/usr/bin"];
  for (const dir of dirs) {
    const node = join(dir, "node");
    if ((await versionOf(node))?.startsWith("v20.")) return node;
  }
  return null;
}

// A stand-in for the worker: answers decide, and refuses a body naming user "bad" as the worker would.
const seen: Array<{ method: string; url: string; authorization: string | undefined; body: unknown }> = [];
const server: Server = createServer((req, res) => {
  let text = "";
  req.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  req.on("end", () => {
    const body = JSON.parse(text || "null") as { userId?: string } | null;
    seen.push({
      method: req.method ?? "",
      url: req.url ?? "",
      authorization: req.headers.authorization,
      body,
    });
    res.setHeader("content-type", "application/json");
    if (body?.userId === "bad") {
      res.statusCode = 400;
      res.end(
        JSON.stringify({
          error: "invalid_request",
          message: "the request does not match the API",
          issues: [{ path: "userId", message: "too short" }],
        }),
      );
      return;
    }
    res.end(
      JSON.stringify({
        visitorId: "u_0123456789abcdef0123456789abcdef",
        rulesVersion: "2026.11.24-1",
        decisions: {
          "home-hero": {
            experience: "hero-hiker",
            variant: null,
            reason: "TARGET_MATCH",
            ruleIndex: 3,
            content: { html: "<h1>The trail is calling</h1>", json: null },
            ttl: 60,
          },
        },
        segments: ["hiker"],
        intent: { top: "hiking", scores: { hiking: 4 } },
        outbound: null,
        unknownPlacements: [],
        failOpen: [],
      }),
    );
  });
});

const CONSUMER_MJS = `import { NorthstarClient, NorthstarError } from "northstar/client";

const ns = new NorthstarClient({ baseUrl: process.argv[2], apiKey: "test-server-key" });
const decided = await ns.decide({ userId: "crm-42", channel: "app", placements: ["home-hero"] });
let refused = null;
try {
  await ns.decide({ userId: "bad" });
} catch (err) {
  refused = err instanceof NorthstarError ? { status: err.status, error: err.body.error } : String(err);
}
console.log(JSON.stringify({ experience: decided.decisions["home-hero"]?.experience, refused }));
`;

// Written for tsc's defaults (target ES5, CommonJS, Node10 resolution): no top-level await, no async.
const CONSUMER_TS = `import { type DecideResponse, NorthstarAdmin, NorthstarClient, NorthstarError } from "northstar/client";

const ns = new NorthstarClient({ baseUrl: "https://shop.example", apiKey: "key" });
export const hero: Promise<string | null | undefined> = ns
  .decide({ userId: "crm-42", channel: "app", placements: ["home-hero"] })
  .then((r: DecideResponse) => r.decisions["home-hero"]?.experience);
// @ts-expect-error placements are strings: the types are the API's, not any
ns.decide({ placements: [1] });
export const admin = new NorthstarAdmin({ baseUrl: "https://shop.example", adminToken: "token" });
export const note: Promise<string> = admin.experiment("hero-test").then((r) => r.report.note);
export const isError = (err: unknown): boolean => err instanceof NorthstarError && err.body.error === "suppressed";
`;

let scratch = "";
let baseUrl = "";
let tarball = "";

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  scratch = mkdtempSync(join(tmpdir(), "northstar-package-"));
  const packs = join(scratch, "packs");
  const project = join(scratch, "consumer");
  for (const dir of [packs, project]) mkdirSync(dir);
  await run("npm", ["pack", "--pack-destination", packs], { cwd: ROOT, env });
  const [name] = readdirSync(packs).filter((f) => f.endsWith(".tgz"));
  tarball = join(packs, name!);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true }));
  // The package has no runtime dependencies (the worker's own are bundled by wrangler), so the
  // tarball installs offline.
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", tarball], {
    cwd: project,
    env,
  });
  expect(readdirSync(join(project, "node_modules")).filter((d) => !d.startsWith("."))).toEqual(["northstar"]);
  writeFileSync(join(project, "consumer.mjs"), CONSUMER_MJS);
  writeFileSync(join(project, "consumer.ts"), CONSUMER_TS);
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("northstar/client, packed and installed in another project", () => {
  it("the tarball holds the built client, its declarations and the README, and no source", async () => {
    const { stdout } = await run("tar", ["-tzf", tarball]);
    const files = stdout.trim().split("\n").sort();
    expect(files).toContain("package/dist/client/index.js");
    expect(files).toContain("package/dist/client/index.d.ts");
    expect(files).toContain("package/README.md");
    expect(files.filter((f) => !f.startsWith("package/dist/client/"))).toEqual([
      "package/README.md",
      "package/package.json",
    ]);
  });

  it.each([
    ["Node 20 (the machine's)", findNode20, "v20."],
    ["Node 22 (the project's)", async () => join(BIN, "node"), "v22."],
  ])(
    "a decide call from plain JavaScript succeeds on %s, and a refusal is a NorthstarError",
    async (_label, find, major) => {
      const node = await find();
      expect(node, "no Node 20 on PATH or in /usr/bin").not.toBeNull();
      expect((await versionOf(node!))?.startsWith(major)).toBe(true);
      const before = seen.length;
      const { stdout } = await run(node!, ["consumer.mjs", baseUrl], { cwd: join(scratch, "consumer") });
      expect(JSON.parse(stdout)).toEqual({
        experience: "hero-hiker",
        refused: { status: 400, error: "invalid_request" },
      });
      expect(seen.slice(before)[0]).toEqual({
        method: "POST",
        url: "/_ns/v1/decide",
        authorization: "Bearer test-server-key",
        body: { userId: "crm-42", channel: "app", placements: ["home-hero"] },
      });
    },
  );

  it("a TypeScript consumer type-checks with tsc's default settings", async () => {
    const result = await run(join(BIN, "tsc"), ["--noEmit", "consumer.ts"], {
      cwd: join(scratch, "consumer"),
    }).catch((err: { stdout: string; code: number }) => err);
    expect("code" in result ? result.stdout : "").toBe("");
  });
});
