import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { servePage } from "../../src/http/page.ts";
import { readConfig } from "../../src/platform/config.ts";

describe("origin unreachable", () => {
  it("gives the visitor a clear 502 page, not a stack trace", async () => {
    const { config } = readConfig(env);
    const broken: Fetcher = {
      fetch: () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:1 at internal/stack.js")),
      connect: () => {
        throw new Error("unused");
      },
    } as unknown as Fetcher;
    const request = new Request("https://shop.test/");
    const res = await servePage(request, new URL(request.url), env, createExecutionContext(), config, {
      origin: new URL(config.ORIGIN),
      service: broken,
    });
    expect(res.status).toBe(502);
    expect(res.headers.get("content-type")).toContain("text/html");
    const html = await res.text();
    expect(html).toContain("unavailable");
    expect(html).not.toContain("ECONNREFUSED");
    expect(html).not.toContain("stack");
  });
});
