import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

// The rules CLI as a rule author runs it (`npm run rules -- …`), in a child process on this Node.
const ROOT = new URL("../..", import.meta.url).pathname;
const rulesCli = (...args: string[]) =>
  spawnSync(process.execPath, ["scripts/rules.ts", ...args], { cwd: ROOT, encoding: "utf8" });

const scratch: string[] = [];
const scratchDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "ns-rules-cli-"));
  scratch.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("rules CLI", () => {
  it("--help lists every command and the publish options", () => {
    const run = rulesCli("--help");
    expect(run.status).toBe(0);
    for (const command of ["validate", "test", "schema", "diff", "publish", "rollback", "list"])
      expect(run.stdout).toMatch(new RegExp(`^  ${command}\\b`, "m"));
    for (const option of ["--local", "--remote", "--env", "--persist-to"])
      expect(run.stdout).toContain(option);
  });

  it("an unknown command exits non-zero with the help on stderr", () => {
    const run = rulesCli("pubish");
    expect(run.status).toBe(2);
    expect(run.stderr).toContain("unknown command: pubish");
    expect(run.stderr).toContain("publish [file]");
  });

  it("publish refuses a version that fails a rule test, names the failing case and writes nothing", () => {
    const dir = scratchDir();
    const doc = JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8"));
    const runner = doc.experiences.find((x: { id: string }) => x.id === "hero-runner");
    runner.content.html = "<h1>Hello</h1>"; // the demo fixture expects the runner's greeting
    const file = join(dir, "broken.rules.json");
    writeFileSync(file, JSON.stringify(doc));
    const state = join(dir, "state");

    const run = rulesCli("publish", file, "--local", "--persist-to", state);

    expect(run.status).toBe(1);
    expect(run.stderr).toContain("publish refused");
    expect(run.stderr).toContain("demo.json: browsing running gear makes a runner");
    expect(readdirSync(dir)).toEqual(["broken.rules.json"]); // no local KV state was created
  });
});
