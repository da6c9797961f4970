import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/platform/env.ts";
import { activeRules, resetRulesCache } from "../../src/state/rules-loader.ts";

// The bundled rules keep the default settings.historyDays (30); RULES_SOURCE=file serves them.
function deployment(logDays: string): Env {
  return { ...env, RULES_SOURCE: "file", EVENT_LOG_MAX_AGE_DAYS: logDays } as unknown as Env;
}

function historyWarnings(): string[] {
  const lines: string[] = [];
  vi.spyOn(console, "log").mockImplementation((line: unknown) => {
    if (typeof line === "string" && line.includes("EVENT_LOG_MAX_AGE_DAYS")) lines.push(line);
  });
  return lines;
}

afterEach(() => {
  vi.restoreAllMocks();
  resetRulesCache();
});

describe("rules that count further back than the event log keeps", () => {
  it("are reported once, as a config problem naming both limits", async () => {
    const lines = historyWarnings();
    await activeRules(deployment("14"));
    await activeRules(deployment("14"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("config_problem");
    expect(lines[0]).toMatch(/30 days back \(settings\.historyDays\) but the event log keeps 14/);
  });

  it("are not reported when the log keeps at least as long", async () => {
    const lines = historyWarnings();
    await activeRules(deployment("30"));
    expect(lines).toEqual([]);
  });
});
