/**
 * The demo shop's origin: static pages from demo/site through the assets binding, plus a tiny cart
 * API that answers JSON and sets two cookies, to show that the proxy passes non-HTML responses and
 * origin cookies through untouched.
 */
interface DemoEnv {
  readonly ASSETS: Fetcher;
}

export default {
  async fetch(request: Request, env: DemoEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/api/cart" && request.method === "POST") {
      const item = await request.json().catch(() => null);
      const headers = new Headers({ "content-type": "application/json", "cache-control": "no-store" });
      headers.append("set-cookie", "cart=1; Path=/; SameSite=Lax");
      headers.append("set-cookie", "cart_seen=1; Path=/; SameSite=Lax");
      return new Response(JSON.stringify({ ok: true, item }), { headers });
    }
    return env.ASSETS.fetch(request);
  },
} satisfies ExportedHandler<DemoEnv>;
