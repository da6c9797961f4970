import { describe, expect, it } from "vitest";
import { findForbiddenKey, inspectJson } from "../../src/core/traits.ts";

// The one walk every request body gets (src/http/request.ts): nesting depth and forbidden keys
// together, at any depth, without recursion.

const nested = (levels: number, inner: string) => `${'{"a":'.repeat(levels)}${inner}${"}".repeat(levels)}`;

describe("inspectJson", () => {
  it("accepts 10 levels of objects and arrays, refuses 11, naming the first level too deep", () => {
    expect(inspectJson(JSON.parse(nested(9, "[1]")), 10)).toBeNull();
    expect(inspectJson(JSON.parse(nested(10, "[1]")), 10)).toEqual({
      reason: "too_deep",
      path: "a.a.a.a.a.a.a.a.a.a",
    });
  });

  it("walks 100,000 levels without overflowing the stack", () => {
    expect(inspectJson(JSON.parse(nested(100_000, "1")), 10)?.reason).toBe("too_deep");
  });

  it("finds __proto__, constructor and prototype at any depth, before depth", () => {
    for (const key of ["__proto__", "constructor", "prototype"]) {
      const value = JSON.parse(nested(30, `{"list":[{"${key}":1}]}`));
      const path = `${"a.".repeat(30)}list.0.${key}`;
      expect(inspectJson(value, 10), key).toEqual({ reason: "forbidden_key", path });
      expect(findForbiddenKey(value), key).toBe(path);
    }
    expect(findForbiddenKey(JSON.parse('{"__proto__":{}}'))).toBe("__proto__");
  });

  it("leaves scalars and ordinary keys alone", () => {
    expect(inspectJson("text", 1)).toBeNull();
    expect(inspectJson({ protocol: { constructorName: ["prototypes"] } }, 10)).toBeNull();
  });
});
