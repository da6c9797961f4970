/**
 * The rules CLI: validate, test, diff, publish, roll back and list rule versions.
 *
 *   npm run rules -- validate [file]            schema + semantic checks, errors by JSON path
 *   npm run rules -- test [file]                run rules/tests/*.json against the rules
 *   npm run rules -- schema                     regenerate rules/schema.json from the zod schema
 *   npm run rules -- diff <old> <new>           what changed, by id
 *   npm run rules -- publish [file] [--local|--remote] [--env production]
 *   npm run rules -- rollback [version] [--local|--remote]
 *   npm run rules -- list [--local|--remote]
 *
 * Publishing writes the immutable version key first, then the history, and flips the
 * `rules:active` pointer last, so a worker never reads half a publish. `--local` writes the state
 * `npm start` reads; `--remote` writes to Cloudflare through wrangler (CLOUDFLARE_API_TOKEN).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FixtureFileSchema, runFixture } from "../src/rules/fixtures.ts";
import {
  compileRules,
  hashRules,
  parseRules,
  type RulesDocument,
  rulesJsonSchema,
} from "../src/rules/index.ts";
import { ACTIVE_KEY, HISTORY_KEY, versionKey } from "../src/rules/keys.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DEFAULT_FILE = join(ROOT, "rules/northstar.rules.json");
const SCHEMA_FILE = join(ROOT, "rules/schema.json");

const args = process.argv.slice(2);
const command = args[0];
const flags = new Set(args.filter((a) => a.startsWith("--")));
const envIndex = args.indexOf("--env");
const wranglerEnv = envIndex >= 0 ? args[envIndex + 1] : undefined;
const positional = args.slice(1).filter((a, i, all) => !a.startsWith("--") && all[i - 1] !== "--env");

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

function load(file: string): RulesDocument {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    fail(`${file}: not JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const parsed = parseRules(json);
  if (!parsed.ok) {
    fail(`${file}: invalid rules\n${parsed.errors.map((e) => `  ${e.path}: ${e.message}`).join("\n")}`);
  }
  return parsed.rules;
}

function wrangler(kvArgs: string[], input?: string): string {
  const target = flags.has("--remote") ? "--remote" : "--local";
  const extra = wranglerEnv ? ["--env", wranglerEnv] : [];
  return execFileSync("npx", ["wrangler", "kv", ...kvArgs, "--binding", "RULES", target, ...extra], {
    cwd: ROOT,
    encoding: "utf8",
    input,
    stdio: ["pipe", "pipe", "inherit"],
  });
}

function kvGet(key: string): unknown {
  try {
    const out = wrangler(["key", "get", key, "--text"]).trim();
    return out && out !== "Value not found" ? JSON.parse(out) : null;
  } catch {
    return null;
  }
}

function kvPut(key: string, value: unknown): void {
  const dir = mkdtempSync(join(tmpdir(), "ns-rules-"));
  const path = join(dir, "value.json");
  writeFileSync(path, JSON.stringify(value));
  try {
    wrangler(["key", "put", key, "--path", path]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type History = Array<{ version: string; hash: string; publishedAt: string }>;

async function main(): Promise<void> {
  switch (command) {
    case "validate": {
      const file = positional[0] ?? DEFAULT_FILE;
      const doc = load(file);
      console.log(`${file}: valid (version ${doc.version}, hash ${await hashRules(doc)})`);
      return;
    }
    case "schema": {
      writeFileSync(SCHEMA_FILE, `${JSON.stringify(rulesJsonSchema(), null, 2)}\n`);
      console.log(`wrote ${SCHEMA_FILE}`);
      return;
    }
    case "test": {
      const doc = load(positional[0] ?? DEFAULT_FILE);
      const rules = compileRules(doc, await hashRules(doc));
      const dir = join(ROOT, "rules/tests");
      let passed = 0;
      let failed = 0;
      for (const name of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
        const file = FixtureFileSchema.safeParse(JSON.parse(readFileSync(join(dir, name), "utf8")));
        if (!file.success)
          fail(`${name}: ${file.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
        for (const c of file.data.cases) {
          const failures = runFixture(rules, c);
          if (failures.length) {
            failed++;
            console.log(`✗ ${name}: ${c.name}\n${failures.map((f) => `    ${f}`).join("\n")}`);
          } else {
            passed++;
            console.log(`✓ ${name}: ${c.name}`);
          }
        }
      }
      console.log(`${passed} passed, ${failed} failed`);
      if (failed) process.exit(1);
      return;
    }
    case "diff": {
      const [a, b] = positional;
      if (!a || !b) fail("usage: rules diff <old.json> <new.json>");
      const before = load(a);
      const after = load(b);
      const sections: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
        ["dimensions", before.dimensions, after.dimensions],
        ["segments", before.segments, after.segments],
        ["conditions", before.conditions, after.conditions],
        ["placements", before.placements, after.placements],
        ["experiments", before.experiments, after.experiments],
        [
          "experiences",
          Object.fromEntries(before.experiences.map((x) => [x.id, x])),
          Object.fromEntries(after.experiences.map((x) => [x.id, x])),
        ],
        [
          "signals",
          Object.fromEntries(before.signals.map((x) => [x.id, x])),
          Object.fromEntries(after.signals.map((x) => [x.id, x])),
        ],
      ];
      console.log(`version ${before.version} → ${after.version}`);
      for (const [section, x, y] of sections) {
        for (const id of Object.keys(y)) if (!(id in x)) console.log(`+ ${section}.${id}`);
        for (const id of Object.keys(x)) if (!(id in y)) console.log(`- ${section}.${id}`);
        for (const id of Object.keys(y))
          if (id in x && JSON.stringify(x[id]) !== JSON.stringify(y[id])) console.log(`~ ${section}.${id}`);
      }
      return;
    }
    case "publish": {
      const doc = load(positional[0] ?? DEFAULT_FILE);
      const hash = await hashRules(doc);
      const existing = kvGet(versionKey(doc.version)) as { hash?: string } | null;
      if (existing && existing.hash !== hash) {
        fail(
          `version ${doc.version} is already published with other content: published versions are immutable; bump "version"`,
        );
      }
      const publishedAt = new Date().toISOString();
      if (!existing) kvPut(versionKey(doc.version), { hash, publishedAt, doc });
      const history = ((kvGet(HISTORY_KEY) as History | null) ?? []).filter((h) => h.version !== doc.version);
      history.push({ version: doc.version, hash, publishedAt });
      kvPut(HISTORY_KEY, history.slice(-100));
      // The pointer flips last: until here, readers still see the previous version whole.
      kvPut(ACTIVE_KEY, { version: doc.version, hash, publishedAt });
      console.log(
        `published ${doc.version} (${hash.slice(0, 12)}) ${flags.has("--remote") ? "to Cloudflare" : "locally"}`,
      );
      return;
    }
    case "rollback": {
      const history = (kvGet(HISTORY_KEY) as History | null) ?? [];
      const active = kvGet(ACTIVE_KEY) as { version: string } | null;
      const target = positional[0]
        ? history.find((h) => h.version === positional[0])
        : history.filter((h) => h.version !== active?.version).at(-1);
      if (!target)
        fail(
          positional[0]
            ? `version ${positional[0]} was never published`
            : "no earlier version to roll back to",
        );
      kvPut(ACTIVE_KEY, {
        version: target.version,
        hash: target.hash,
        publishedAt: new Date().toISOString(),
      });
      console.log(`active rules: ${target.version} (was ${active?.version ?? "none"})`);
      return;
    }
    case "list": {
      const history = (kvGet(HISTORY_KEY) as History | null) ?? [];
      const active = kvGet(ACTIVE_KEY) as { version: string } | null;
      for (const h of history)
        console.log(
          `${h.version === active?.version ? "*" : " "} ${h.version}  ${h.hash.slice(0, 12)}  ${h.publishedAt}`,
        );
      if (!history.length) console.log("no published versions");
      return;
    }
    default:
      fail("usage: npm run rules -- validate|test|schema|diff|publish|rollback|list (see scripts/rules.ts)");
  }
}

await main();
