import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { ERROR_STATUS, type ErrorCode, jsonError } from "../../src/http/errors.ts";

// The error table (src/http/errors.ts) is where every API error's status comes from: an answer
// carries the status its code has in the table, and no route writes an error body or status of its own.

const SRC = join(import.meta.dirname, "../../src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

describe("error codes", () => {
  it("each code answers with the table's status, its own name, and no-store", async () => {
    for (const code of Object.keys(ERROR_STATUS) as ErrorCode[]) {
      const res = jsonError(code as "invalid_request", "why", { issues: [{ path: "x", message: "bad" }] });
      expect(res.status, code).toBe(ERROR_STATUS[code]);
      expect(res.headers.get("cache-control"), code).toBe("no-store");
      expect(await res.json(), code).toEqual({
        error: code,
        message: "why",
        issues: [{ path: "x", message: "bad" }],
      });
    }
  });

  it("no module outside errors.ts gives an error its status or writes an error body itself", () => {
    const offenders: string[] = [];
    // The typed client reads error bodies; it never answers one.
    const files = sourceFiles(SRC).filter((f) => !f.endsWith("http/errors.ts") && !f.includes("/client/"));
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      for (const pattern of [/jsonError\(\s*\d/g, /\.json\(\s*\{\s*error\s*:/g]) {
        for (const match of text.matchAll(pattern)) {
          const line = text.slice(0, match.index).split("\n").length;
          offenders.push(`${relative(SRC, file)}:${line}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});
