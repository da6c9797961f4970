import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, startDevServer } from "./harness.ts";

// Issue 11: a user who runs `wrangler dev --var ORIGIN:http://127.0.0.1:<port>` gets that origin,
// not the demo shop. The origin here is a plain Node server the worker can only reach over the network.

const BROWSER_UA =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0 Safari/537.36";
const PAGE = `<!doctype html><html><head><title>Corner Bakery</title></head>
<body><main><h1>Fresh bread at the corner bakery</h1></main></body></html>`;

let origin: Server;
let originUrl: string;
const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
let server: DevServer;

beforeAll(async () => {
  origin = createServer((req, res) => {
    seen.push({ url: req.url ?? "", headers: req.headers });
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(PAGE);
  });
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
  const address = origin.address();
  if (!address || typeof address === "string") throw new Error("the origin has no port");
  originUrl = `http://127.0.0.1:${address.port}`;
  server = await startDevServer({ ORIGIN: originUrl }, { demo: false });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await new Promise((resolve) => origin?.close(resolve));
});

describe("wrangler dev --var ORIGIN:<url>", () => {
  it("serves the configured origin's page, which that origin was asked for", async () => {
    const res = await fetch(`${server.url}/?from=proxy`, { headers: { "user-agent": BROWSER_UA } });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain("Fresh bread at the corner bakery");
    expect(html).not.toContain("Summit &amp; Stride");
    const asked = seen.find((r) => r.url === "/?from=proxy");
    expect(asked?.headers.host).toBe(new URL(originUrl).host);
  });

  it("health reports no configuration problem", async () => {
    const res = await fetch(`${server.url}/_ns/health`);
    expect(await res.json()).toMatchObject({ configProblems: [] });
  });
});
