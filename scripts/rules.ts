/**
 * The rules CLI: validate, test, diff, publish, roll back and list rule versions.
 * `npm run rules -- --help` prints every command with its options (HELP below).
 *
 * Publishing validates the document and runs every fixture in rules/tests first, and refuses when
 * any fails. It writes the immutable version key first, then the history, and flips the
 * `rules:active` pointer last, so a worker never reads half a publish. `--local` writes the state
 * `npm run dev` reads; `--remote` writes to Cloudflare through wrangler (CLOUDFLARE_API_TOKEN).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FixtureFileSchema, runFixture } from "../src/rules/fixtures.ts";
import {
  compileRules,
  hashRules,
  layerMoves,
  listRules,
  newlyCounted,
  parseRules,
  publishRules,
  type RulesDocument,
  type RulesKv,
  rollbackRules,
  rulesJsonSchema,
} from "../src/rules/index.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DEFAULT_FILE = join(ROOT, "rules/northstar.rules.json");
const SCHEMA_FILE = join(ROOT, "rules/schema.json");

const HELP = `Northstar rules: versioned JSON, validated, tested, published to KV without a redeploy.

usage: npm run rules -- <command> [options]

commands
  validate [file]        schema and semantic checks; each error names its JSON path
  test [file]            run every case in rules/tests/*.json against the rules
  schema                 regenerate rules/schema.json from the zod schema (editors autocomplete from it)
  diff <old> <new>       what changed between two rule files, by id
  publish [file]         validate, run every fixture, then publish; refused (exit 1) if any fails
  rollback [version]     make an earlier published version active (default: the previous one)
  list                   published versions, the active one starred
  help                   this text (also --help, -h)

[file] defaults to rules/northstar.rules.json.

options (publish, rollback, list)
  --local                the local KV state that \`npm run dev\` and \`wrangler dev\` read (default)
  --remote               Cloudflare's KV, through wrangler (needs CLOUDFLARE_API_TOKEN)
  --env <name>           a wrangler environment, e.g. --env production
  --persist-to <dir>     with --local: local state in <dir> instead of .wrangler/state
`;

const args = process.argv.slice(2);
const command = args[0];
const flags = new Set(args.filter((a) => a.startsWith("--")));
const flagValue = (flag: string): string | undefined => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
};
const wranglerEnv = flagValue("--env");
/** `--persist-to <dir>`: local KV state somewhere else than .wrangler (scratch publishes, tests). */
const persistTo = flagValue("--persist-to");
const positional = args
  .slice(1)
  .filter(
    (a, i, all) =>
      !a.startsWith("--") && all[i] !== undefined && !["--env", "--persist-to"].includes(all[i - 1] ?? ""),
  );

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

function wranglerArgs(kvArgs: string[]): string[] {
  const target = flags.has("--remote") ? "--remote" : "--local";
  const extra = [
    ...(wranglerEnv ? ["--env", wranglerEnv] : []),
    ...(persistTo && target === "--local" ? ["--persist-to", persistTo] : []),
  ];
  return ["wrangler", "kv", ...kvArgs, "--binding", "RULES", target, ...extra];
}

/** The `✘ [ERROR] …` line of wrangler's stderr, without its colours. */
function wranglerError(stderr: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes are control characters
  const plain = stderr.replace(/\u001b\[[0-9;]*m/g, "");
  const line =
    plain.split("\n").find((l) => l.includes("[ERROR]")) ?? plain.split("\n").find((l) => l.trim());
  return line?.replace(/^.*\[ERROR\]\s*/, "").trim() || undefined;
}

/**
 * RULES through wrangler. A missing key is `Value not found` on stdout (local) or a 404 from the
 * API (remote); anything else that fails is an error the store must see as one, never as "absent".
 */
const kv: RulesKv = {
  async get(key) {
    const run = spawnSync("npx", wranglerArgs(["key", "get", key, "--text"]), {
      cwd: ROOT,
      encoding: "utf8",
    });
    const out = (run.stdout ?? "").trim();
    const err = `${run.stderr ?? ""}`.trim();
    if (run.status === 0) {
      if (!out || out === "Value not found") return { ok: true, value: null };
      try {
        return { ok: true, value: JSON.parse(out) };
      } catch {
        // Not JSON: the store reports what it expected there rather than treating it as absent.
        return { ok: true, value: out };
      }
    }
    if (/\b404\b/.test(`${out}\n${err}`) && /not found/i.test(`${out}\n${err}`))
      return { ok: true, value: null };
    return {
      ok: false,
      error: run.error?.message ?? wranglerError(err) ?? `wrangler exited with ${run.status}`,
    };
  },
  async put(key, value) {
    const dir = mkdtempSync(join(tmpdir(), "ns-rules-"));
    const path = join(dir, "value.json");
    writeFileSync(path, JSON.stringify(value));
    try {
      execFileSync("npx", wranglerArgs(["key", "put", key, "--path", path]), {
        cwd: ROOT,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
      });
      return { ok: true };
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err.message : String(err) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

/** The commit being published: CI's GITHUB_SHA, else the checkout's HEAD, else unknown. */
function gitSha(): string | undefined {
  if (process.env.GITHUB_SHA) return process.env.GITHUB_SHA;
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8", stdio: "pipe" }).trim();
  } catch {
    return undefined; // not a git checkout (an unpacked tarball): published without a sha
  }
}

/**
 * Every case of every fixture file against the document. Returns the failures by name; prints a
 * line per case when `verbose`, and always the totals.
 */
async function runAllFixtures(doc: RulesDocument, verbose: boolean): Promise<{ failed: string[] }> {
  const rules = compileRules(doc, await hashRules(doc));
  const dir = join(ROOT, "rules/tests");
  let passed = 0;
  const failed: string[] = [];
  for (const name of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
    const file = FixtureFileSchema.safeParse(JSON.parse(readFileSync(join(dir, name), "utf8")));
    if (!file.success) {
      const problem = `${name}: ${file.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`;
      failed.push(problem);
      // Said, not only counted: a file that does not parse runs none of its cases.
      console.log(`✗ ${problem}`);
      continue;
    }
    for (const c of file.data.cases) {
      const failures = runFixture(rules, c);
      if (failures.length) {
        failed.push(`${name}: ${c.name}`);
        console.log(`✗ ${name}: ${c.name}\n${failures.map((f) => `    ${f}`).join("\n")}`);
      } else {
        passed++;
        if (verbose) console.log(`✓ ${name}: ${c.name}`);
      }
    }
  }
  console.log(`${passed} passed, ${failed.length} failed`);
  return { failed };
}

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
      const { failed } = await runAllFixtures(load(positional[0] ?? DEFAULT_FILE), true);
      if (failed.length) process.exit(1);
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
        ["layers", before.layers ?? {}, after.layers ?? {}],
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
          if (id in x && JSON.stringify(x[id]) !== JSON.stringify(y[id])) {
            const a = (x[id] ?? {}) as Record<string, unknown>;
            const b = (y[id] ?? {}) as Record<string, unknown>;
            const fields = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter(
              (k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]),
            );
            console.log(`~ ${section}.${id} (${fields.join(", ")})`);
          }
      }
      // A layer cut differently moves visitors between its experiments (docs/bucketing.md, Layers).
      for (const move of layerMoves(before, after)) console.log(move);
      // A condition reading counters of a type not counted before (docs/decisions.md, record 21).
      for (const warning of newlyCounted(before, after)) console.log(warning);
      return;
    }
    case "publish": {
      const doc = load(positional[0] ?? DEFAULT_FILE);
      // A version that fails its own fixtures never reaches a worker.
      const { failed } = await runAllFixtures(doc, false);
      if (failed.length)
        fail(
          `publish refused: ${failed.length} rule test(s) failed\n${failed.map((f) => `  ✗ ${f}`).join("\n")}`,
        );
      const now = new Date().toISOString();
      // Reads tell "absent" from "failed"; version, history and pointer are written in that order.
      const done = await publishRules(kv, doc, { generatedAt: now, gitSha: gitSha() }, now);
      if (!done.ok) fail(`publish refused: ${done.message}`);
      console.log(
        `published ${done.version} (${done.hash.slice(0, 12)})${done.unchanged ? " (version already stored, pointer moved)" : ""} ${flags.has("--remote") ? "to Cloudflare" : "locally"}`,
      );
      return;
    }
    case "rollback": {
      const done = await rollbackRules(kv, positional[0], new Date().toISOString());
      if (!done.ok) fail(`rollback refused: ${done.message}`);
      console.log(`active rules: ${done.pointer.version} (was ${done.from ?? "none"})`);
      return;
    }
    case "list": {
      const listed = await listRules(kv);
      if (!listed.ok) fail(listed.message);
      for (const h of listed.history)
        console.log(
          `${h.version === listed.active ? "*" : " "} ${h.version}  ${h.hash.slice(0, 12)}  ${h.publishedAt ?? ""}`,
        );
      if (!listed.history.length) console.log("no published versions");
      return;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(HELP);
      return;
    default:
      console.error(`unknown command: ${command}\n`);
      console.error(HELP);
      process.exit(2);
  }
}

await main();
