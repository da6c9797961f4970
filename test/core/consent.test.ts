import { describe, expect, it } from "vitest";
import { effectiveConsent, granted } from "../../src/core/consent.ts";

describe("consent modes", () => {
  it("opt-out: granted until refused; opt-in: refused until granted", () => {
    expect(granted({}, "personalization", "opt-out")).toBe(true);
    expect(granted({ personalization: false }, "personalization", "opt-out")).toBe(false);
    expect(granted({}, "personalization", "opt-in")).toBe(false);
    expect(granted({ personalization: true }, "personalization", "opt-in")).toBe(true);
    expect(granted({ personalization: false }, "personalization", "opt-in")).toBe(false);
  });

  it("a purpose named like an Object member is never read from the prototype", () => {
    expect(granted({}, "constructor", "opt-in")).toBe(false);
    expect(granted({}, "toString", "opt-out")).toBe(true);
  });

  it("opt-in spells out every unanswered purpose as refused; opt-out leaves the answers as they are", () => {
    expect(effectiveConsent({ measurement: true }, "opt-in")).toEqual({
      personalization: false,
      measurement: true,
    });
    expect(effectiveConsent({ measurement: true }, "opt-out")).toEqual({ measurement: true });
  });
});
