import { describe, expect, it } from "vitest";
import { chooseBrowser } from "./browser.ts";

// Which browser the tests would drive, on machines described by what is executable on them.
const machine =
  (...executables: string[]) =>
  (path: string) =>
    executables.includes(path);

describe("chooseBrowser", () => {
  it("uses CHROMIUM_PATH over any browser on the machine", () => {
    const env = { CHROMIUM_PATH: "/opt/mine/chrome", PATH: "/usr/bin" };
    expect(chooseBrowser(env, machine("/opt/mine/chrome", "/usr/bin/chromium"))).toEqual({
      source: "CHROMIUM_PATH",
      path: "/opt/mine/chrome",
    });
  });

  it("refuses a CHROMIUM_PATH that is not executable instead of using another browser", () => {
    const env = { CHROMIUM_PATH: "/nowhere/chrome", PATH: "/usr/bin" };
    expect(() => chooseBrowser(env, machine("/usr/bin/chromium"))).toThrow("CHROMIUM_PATH=/nowhere/chrome");
  });

  it("prefers chromium to google-chrome, wherever each is on PATH", () => {
    const env = { PATH: "/home/me/bin:/opt/bin" };
    expect(chooseBrowser(env, machine("/home/me/bin/google-chrome", "/opt/bin/chromium"))).toEqual({
      source: "system",
      path: "/opt/bin/chromium",
    });
  });

  it("finds Chrome in its usual place when PATH does not list it", () => {
    const env = { PATH: "/work/node_modules/.bin" };
    expect(chooseBrowser(env, machine("/opt/google/chrome/chrome"))).toEqual({
      source: "system",
      path: "/opt/google/chrome/chrome",
    });
  });

  it("falls back to @sparticuz/chromium on a machine with no browser", () => {
    expect(chooseBrowser({ PATH: "/usr/bin" }, machine())).toEqual({ source: "@sparticuz/chromium" });
  });
});
