import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const ROOT = new URL("../../", import.meta.url);
const SECRETS = ["ADMIN_TOKEN", "COOKIE_SECRET", "IDENTITY_SECRET", "SERVER_API_KEY"];

describe("what a deploy can ship", () => {
  it("no secret is a var in wrangler.toml (a bare `wrangler deploy` would ship it); development values live in .dev.vars", () => {
    const wrangler = readFileSync(new URL("wrangler.toml", ROOT), "utf8");
    for (const name of SECRETS) expect(wrangler).not.toMatch(new RegExp(`^\\s*${name}\\s*=`, "m"));
    const devVars = readFileSync(new URL(".dev.vars", ROOT), "utf8");
    for (const name of SECRETS) expect(devVars).toMatch(new RegExp(`^${name}=`, "m"));
  });
});
