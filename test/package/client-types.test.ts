import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { API_TYPES_FILE, clientTypesSource } from "../../scripts/client-types.ts";

describe("the client's published types", () => {
  it("are what the worker's schemas generate (regenerate: node scripts/client-types.ts)", () => {
    expect(readFileSync(API_TYPES_FILE, "utf8")).toBe(clientTypesSource());
  });
});
