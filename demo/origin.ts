/**
 * The demo shop's origin: static pages from demo/site through the assets binding (404.html for
 * unknown paths), plus a tiny cart API that answers JSON and sets two cookies, to show that the
 * proxy passes non-HTML responses and the origin's own cookies through untouched.
 *
 *   POST /api/cart  {"product": "trail-runner-2", "qty": 1}  -> 200 {"ok": true, "cart": {...}}
 *                   sets `cart=<product:qty,...>; Path=/` and `cart_seen=1; Path=/`
 *   GET  /api/cart  -> 200 {"cart": {...}} read from the cookie
 *   /outbox         the journeys' webhook destination and the page listing what it received (outbox.ts)
 */
import { outbox } from "./outbox.ts";

interface DemoEnv {
  readonly ASSETS: Fetcher;
  /** The key the journeys' webhooks are signed with (the proxy's WEBHOOK_SECRET). */
  readonly WEBHOOK_SECRET?: string;
}

type Cart = Record<string, number>;

const SLUG = /^[a-z0-9-]{1,64}$/;

function json(body: unknown, status = 200, headers = new Headers()): Response {
  headers.set("content-type", "application/json; charset=utf-8");
  headers.set("cache-control", "no-store");
  return new Response(JSON.stringify(body), { status, headers });
}

/** The cart cookie: `trail-runner-2:1,tempo-tee:2` (slugs and counts only, so no escaping games). */
function readCart(request: Request): Cart {
  const cookie = request.headers.get("cookie") ?? "";
  const raw = /(?:^|;\s*)cart=([^;]*)/.exec(cookie)?.[1] ?? "";
  const cart: Cart = {};
  for (const part of raw.split(",")) {
    const [slug, qty] = part.split(":");
    const n = Number(qty);
    if (slug && SLUG.test(slug) && Number.isInteger(n) && n > 0 && n <= 99) cart[slug] = n;
  }
  return cart;
}

function writeCart(cart: Cart): string {
  const value = Object.entries(cart)
    .map(([slug, n]) => `${slug}:${n}`)
    .join(",");
  return `cart=${value}; Path=/; SameSite=Lax; Max-Age=2592000`;
}

async function cartApi(request: Request): Promise<Response> {
  if (request.method === "GET") return json({ cart: readCart(request) });
  if (request.method !== "POST") {
    return json({ error: "method_not_allowed" }, 405, new Headers({ allow: "GET, POST" }));
  }
  const body = (await request.json().catch(() => null)) as { product?: unknown; qty?: unknown } | null;
  const product = body?.product;
  const qty = body?.qty ?? 1;
  if (
    typeof product !== "string" ||
    !SLUG.test(product) ||
    typeof qty !== "number" ||
    !Number.isInteger(qty)
  ) {
    return json(
      { error: "invalid_request", message: 'expected {"product": "<slug>", "qty": <integer>}' },
      400,
    );
  }
  const cart = readCart(request);
  cart[product] = Math.min(99, Math.max(0, (cart[product] ?? 0) + qty));
  if (cart[product] === 0) delete cart[product];
  const headers = new Headers();
  headers.append("set-cookie", writeCart(cart));
  headers.append("set-cookie", "cart_seen=1; Path=/; SameSite=Lax; Max-Age=2592000");
  return json({ ok: true, cart, items: Object.values(cart).reduce((a, b) => a + b, 0) }, 200, headers);
}

export default {
  async fetch(request: Request, env: DemoEnv): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/api/cart") return cartApi(request);
    if (url.pathname === "/outbox" || url.pathname.startsWith("/outbox/"))
      return outbox(request, url, env.WEBHOOK_SECRET);
    return env.ASSETS.fetch(request);
  },
} satisfies ExportedHandler<DemoEnv>;
