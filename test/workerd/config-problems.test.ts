import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { handle } from "../../src/http/app.ts";
import type { Env } from "../../src/platform/env.ts";
import { BROWSER_UA } from "./helpers.ts";

// A deployment's env with bad values, as `wrangler dev --var NAME:value` would give it. The test
// origin (ORIGIN_SERVICE) stays bound: a bad ORIGIN must not be papered over by it.
const SECRET = "short!"; // too short for an admin token, and must never be shown
function misconfigured(): Env {
  return {
    ...env,
    ORIGIN: "127.0.0.1:8805",
    STORE_DEADLINE_MS: "soon",
    ADMIN_TOKEN: SECRET,
  } as unknown as Env;
}

async function request(path: string, bindings: Env): Promise<{ res: Response; body: string }> {
  const ctx = createExecutionContext();
  const res = await handle(
    new Request(`https://shop.test${path}`, { headers: { "user-agent": BROWSER_UA } }),
    bindings,
    ctx,
  );
  const body = await res.text();
  await waitOnExecutionContext(ctx);
  return { res, body };
}

type Problem = { name: string; message: string; usedInstead: string };

afterEach(() => {
  vi.restoreAllMocks();
});

describe("configuration problems", () => {
  it("health lists each bad variable by name, what is wrong and what is used instead", async () => {
    const { res, body } = await request("/_ns/health", misconfigured());
    expect(res.status).toBe(200);
    const problems = (JSON.parse(body) as { configProblems: Problem[] }).configProblems;
    const byName = Object.fromEntries(problems.map((p) => [p.name, p]));
    expect(Object.keys(byName).sort()).toEqual(["ADMIN_TOKEN", "ORIGIN", "STORE_DEADLINE_MS"]);
    expect(byName.ORIGIN!.message).toContain("http:// or https:// URL");
    expect(byName.ORIGIN!.usedInstead).toContain("502");
    expect(byName.STORE_DEADLINE_MS).toEqual({
      name: "STORE_DEADLINE_MS",
      message: "must be a whole number of milliseconds from 1 to 5000",
      usedInstead: "50",
    });
    expect(byName.ADMIN_TOKEN!.message).toBe("must be at least 8 characters");
  });

  it("never shows a secret's value in health", async () => {
    const { body } = await request("/_ns/health", misconfigured());
    expect(body).toContain("ADMIN_TOKEN");
    expect(body).not.toContain(SECRET);
  });

  it("health lists nothing when the configuration is good", async () => {
    const { body } = await request("/_ns/health", env);
    expect(JSON.parse(body)).toMatchObject({ configProblems: [] });
  });

  it("pages answer 502 with a bad ORIGIN even where a service binding could answer", async () => {
    const { res, body } = await request("/", misconfigured());
    expect(res.status).toBe(502);
    expect(body).toContain("unavailable");
  });

  it("logs each problem once, at the first request, without secret values", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      lines.push(String(line));
    });
    const bindings = misconfigured();
    await request("/_ns/health", bindings);
    await request("/_ns/health", bindings);
    const problems = lines
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { msg: string; level: string; name?: string })
      .filter((entry) => entry.msg === "config_problem");
    expect(problems.map((p) => p.name).sort()).toEqual(["ADMIN_TOKEN", "ORIGIN", "STORE_DEADLINE_MS"]);
    expect(problems.every((p) => p.level === "warn")).toBe(true);
    expect(lines.join("\n")).not.toContain(SECRET);
  });
});
