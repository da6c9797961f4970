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

  it("diff names a layer's new and changed experiments, and the experiments whose visitors move", () => {
    const dir = scratchDir();
    const doc = JSON.parse(readFileSync(join(ROOT, "rules/northstar.rules.json"), "utf8"));
    // The banner test ends and is removed: the note test, which states no start, slides to 0–0.5.
    delete doc.experiments["newsletter-banner-copy"];
    doc.experiences = doc.experiences.filter((x: { id: string }) => x.id !== "newsletter-welcome");
    const file = join(dir, "next.rules.json");
    writeFileSync(file, JSON.stringify(doc));

    const run = rulesCli("diff", "rules/northstar.rules.json", file);

    expect(run.status).toBe(0);
    expect(run.stdout).toContain("- experiments.newsletter-banner-copy");
    expect(run.stdout).toContain(
      "! experiments.newsletter-note: its part of layer newsletter-landing moves from 0.5–1 to 0–0.5, so visitors move in or out of it",
    );

    // Stating the start it had keeps its visitors where they were: nothing moves.
    doc.experiments["newsletter-note"].layer.from = 0.5;
    writeFileSync(file, JSON.stringify(doc));
    const pinned = rulesCli("diff", "rules/northstar.rules.json", file);
    expect(pinned.stdout).toContain("~ experiments.newsletter-note (layer)");
    expect(pinned.stdout).not.toContain("moves from");
    // Two CLI runs, each a Node start: seconds on a busy machine (a limit for a hang, not a timing check).
  }, 60_000);

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
