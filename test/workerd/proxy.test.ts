import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { handle } from "../../src/http/app.ts";

// The proxy as a site's visitors meet it: requests through the worker to the test origin
// (test/fixtures/origin.js, bound as ORIGIN_SERVICE), answers back.
const PROXY = "https://shop.test";
// `redirect: "manual"` as a browser's network layer sees it: the redirect itself, not where it leads.
const get = (path: string, init?: RequestInit) =>
  exports.default.fetch(new Request(`${PROXY}${path}`, { redirect: "manual", ...init }));

function expectedBinary(): Uint8Array {
  const bytes = new Uint8Array(70000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >> 8)) & 0xff;
  return bytes;
}

describe("transparent proxy", () => {
  it("forwards method, path, query string, body and headers to the configured origin", async () => {
    const res = await get("/echo?q=trail%20shoes&page=2", {
      method: "POST",
      headers: { "content-type": "application/json", "x-custom": "kept", "cf-connecting-ip": "203.0.113.9" },
      body: JSON.stringify({ size: 42 }),
    });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as {
      method: string;
      url: string;
      headers: Record<string, string>;
      body: string;
    };
    expect(seen.method).toBe("POST");
    expect(seen.url).toBe("https://demo-shop.northstar.local/echo?q=trail%20shoes&page=2");
    expect(seen.body).toBe('{"size":42}');
    expect(seen.headers["x-custom"]).toBe("kept");
    expect(seen.headers["x-forwarded-for"]).toBe("203.0.113.9");
    expect(seen.headers["x-forwarded-proto"]).toBe("https");
    expect(seen.headers["x-forwarded-host"]).toBe("shop.test");
    expect(seen.headers.host).toBe("demo-shop.northstar.local");
  });

  it("drops hop-by-hop headers, including those the Connection header names", async () => {
    const res = await get("/echo", {
      headers: {
        connection: "keep-alive, x-secret-hop",
        "x-secret-hop": "1",
        "keep-alive": "timeout=5",
        te: "trailers",
      },
    });
    const seen = (await res.json()) as { headers: Record<string, string> };
    expect(seen.headers["x-secret-hop"]).toBeUndefined();
    expect(seen.headers["keep-alive"]).toBeUndefined();
    expect(seen.headers.te).toBeUndefined();
  });

  it("asks the origin only for encodings the runtime can decode", async () => {
    const res = await get("/echo", { headers: { "accept-encoding": "zstd, deflate, gzip" } });
    const seen = (await res.json()) as { headers: Record<string, string> };
    expect(seen.headers["accept-encoding"]).toBe("gzip, br");
  });

  it("is not an open proxy: an absolute URL or Host header cannot pick another host", async () => {
    const res = await exports.default.fetch(
      new Request(`${PROXY}/echo`, { headers: { host: "evil.example", "x-forwarded-host": "evil.example" } }),
    );
    const seen = (await res.json()) as { url: string };
    expect(new URL(seen.url).host).toBe("demo-shop.northstar.local");
    const res2 = await get("//evil.example/echo");
    const seen2 = (await res2.json().catch(() => null)) as { url: string } | null;
    if (seen2) expect(new URL(seen2.url).host).toBe("demo-shop.northstar.local");
    else expect(res2.status).toBe(404);
  });

  it("passes binary bodies through byte-identical, with their headers", async () => {
    const res = await get("/binary");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("etag")).toBe('"bin-1"');
    expect(res.headers.get("cache-control")).toBe("public, max-age=3600");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(expectedBinary());
  });

  it("passes range requests and 304s through", async () => {
    const ranged = await get("/binary", { headers: { range: "bytes=100-199" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe("bytes 100-199/70000");
    expect(new Uint8Array(await ranged.arrayBuffer())).toEqual(expectedBinary().slice(100, 200));
    const nm = await get("/not-modified", { headers: { "if-none-match": '"v1"' } });
    expect(nm.status).toBe(304);
    expect(nm.headers.get("etag")).toBe('"v1"');
  });

  it("keeps several Set-Cookie headers separate", async () => {
    const res = await get("/cookies");
    expect(res.headers.getSetCookie()).toEqual(["a=1; Path=/; HttpOnly", "b=2, with comma; Path=/"]);
  });

  it("passes redirects to the browser, moving origin-host Locations to the proxy host", async () => {
    const internal = await get("/redirect-internal");
    expect(internal.status).toBe(302);
    expect(internal.headers.get("location")).toBe("https://shop.test/target?x=1");
    const relative = await get("/redirect-relative");
    expect(relative.status).toBe(301);
    expect(relative.headers.get("location")).toBe("https://shop.test/moved");
    const external = await get("/redirect-external");
    expect(external.headers.get("location")).toBe("https://elsewhere.example/page");
  });

  it("answers HEAD without a body", async () => {
    const res = await get("/page", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(await res.text()).toBe("");
  });

  it("keeps the origin's status codes on HTML", async () => {
    const res = await get("/status?code=410");
    expect(res.status).toBe(410);
    expect(await res.text()).toContain("teapot");
  });

  it("rewrites HTML without the origin's Content-Length and with a weakened ETag", async () => {
    const res = await get("/page");
    expect(res.headers.get("content-length")).toBeNull();
    expect(res.headers.get("etag")).toBe('W/"page-1"');
    const html = await res.text();
    expect(html).toContain("Default hero");
    expect(html.trimEnd().endsWith("</html>")).toBe(true);
  });

  it("passes JSON from the origin through with its caching headers", async () => {
    const res = await get("/json");
    expect(res.headers.get("cache-control")).toBe("max-age=30");
    expect(await res.json()).toEqual({ hello: "world" });
  });

  it("streams a large HTML body: the first chunk arrives before the origin has finished", async () => {
    // An origin that sends its first chunk, then holds the rest until the test lets it go. A proxy
    // that buffered the page would hand the visitor nothing before the release (the read below would
    // never end, and the test would time out), so the order of events is the whole check.
    const events: string[] = [];
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const encoder = new TextEncoder();
    const origin = {
      fetch: async () =>
        new Response(
          new ReadableStream({
            async start(controller) {
              controller.enqueue(
                encoder.encode(
                  `<!doctype html><html><head><title>held</title></head><body><p id="first">first chunk</p>`,
                ),
              );
              await held;
              events.push("origin sends the rest");
              controller.enqueue(encoder.encode(`<p id="last">last chunk</p></body></html>`));
              controller.close();
            },
          }),
          { headers: { "content-type": "text/html" } },
        ),
    };
    const ctx = createExecutionContext();
    const res = await handle(
      new Request(`${PROXY}/held`, { headers: { "accept-encoding": "identity" } }),
      { ...env, ORIGIN_SERVICE: origin } as unknown as typeof env,
      ctx,
    );
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const first = decoder.decode((await reader.read()).value);
    events.push("visitor has the first chunk");
    expect(first).toContain("first chunk");
    expect(first).not.toContain("last chunk");
    release();
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += decoder.decode(r.value);
    events.push("visitor has the whole page");
    expect(rest).toContain("last chunk");
    expect(events).toEqual([
      "visitor has the first chunk",
      "origin sends the rest",
      "visitor has the whole page",
    ]);
    await waitOnExecutionContext(ctx);
  });
});

describe("reserved prefix", () => {
  it("answers health as JSON and does not reach the origin", async () => {
    const res = await get("/_ns/health");
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; version: string; rulesVersion: string };
    expect(body.status).toBe("ok");
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(body.rulesVersion).toBe("2026.11.24-1");
  });

  it("answers unknown routes under the prefix with a JSON 404", async () => {
    const res = await get("/_ns/nope");
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: "not_found" });
  });
});
