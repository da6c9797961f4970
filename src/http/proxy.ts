import { withDeadline } from "../platform/deadline.ts";

/**
 * The transparent proxy: every request outside the reserved prefix goes to the one configured
 * origin, and its response streams back. Only HTML may be rewritten, and only by the native
 * HTMLRewriter; everything else passes through byte-identical.
 */

/** Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection and never forwarded. */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

export interface OriginTarget {
  /** The configured origin, e.g. `https://shop.example`. Requests never go anywhere else. */
  readonly origin: URL;
  /** Service binding standing in for the network (development and tests). */
  readonly service?: Fetcher | undefined;
}

/** A response's headers: a blind delete per name costs less than walking the names present (profiled). */
function stripHopByHop(headers: Headers): void {
  const listed = headers.get("connection");
  if (listed) {
    for (const name of listed.split(",")) headers.delete(name.trim());
  }
  for (const name of HOP_BY_HOP) headers.delete(name);
}

const HOP_BY_HOP_NAMES: ReadonlySet<string> = new Set(HOP_BY_HOP);

/**
 * A request's headers, which must lose Cloudflare's `cf-*` ones too, so are walked once anyway:
 * the hop-by-hop ones, those Connection lists and the `cf-*` ones go in that one pass.
 */
function stripForOrigin(headers: Headers): void {
  const listed = headers.get("connection");
  const connectionListed = listed
    ? new Set(listed.split(",").map((name) => name.trim().toLowerCase()))
    : null;
  const doomed: string[] = [];
  // Names come lowercased from a Headers iterator; deleting while iterating would skip entries.
  for (const name of headers.keys()) {
    if (HOP_BY_HOP_NAMES.has(name) || connectionListed?.has(name) || name.startsWith("cf-"))
      doomed.push(name);
  }
  for (const name of doomed) headers.delete(name);
}

/**
 * Builds the request to the origin. The target URL is the configured origin plus the incoming
 * path and query, so no request can make the worker fetch another host (no open proxy).
 */
export function originRequest(request: Request, incoming: URL, target: OriginTarget): Request {
  // Path and query are copied onto the origin URL, never resolved against it: a path such as
  // `//evil.example/x` would otherwise be read as another host.
  const url = new URL(target.origin);
  url.pathname = incoming.pathname;
  url.search = incoming.search;
  const headers = new Headers(request.headers);
  // cf-* headers are Cloudflare's, for this worker; cf-connecting-ip is read from the request below.
  stripForOrigin(headers);
  headers.set("host", url.host);
  // The runtime decodes gzip and br for the rewriter; any other coding would reach it compressed.
  headers.set("accept-encoding", "gzip, br");
  const clientIp = request.headers.get("cf-connecting-ip");
  if (clientIp) {
    const prior = request.headers.get("x-forwarded-for");
    headers.set("x-forwarded-for", prior ? `${prior}, ${clientIp}` : clientIp);
  }
  headers.set("x-forwarded-proto", incoming.protocol.replace(":", ""));
  headers.set("x-forwarded-host", incoming.host);
  const hasBody = request.method !== "GET" && request.method !== "HEAD";
  return new Request(url, {
    method: request.method,
    headers,
    body: hasBody ? request.body : null,
    redirect: "manual",
  });
}

export type OriginResult =
  | { ok: true; response: Response }
  | { ok: false; reason: "unreachable" | "timeout"; error: string };

/**
 * Fetches from the origin; a network failure (502) or no response headers within `timeoutMs` (504)
 * is a value, not a throw. The deadline bounds the wait for the headers only: once they are here its
 * timer is cleared and the signal is never aborted, so a body that streams for longer is not cut.
 */
export async function fetchOrigin(
  request: Request,
  target: OriginTarget,
  timeoutMs: number,
): Promise<OriginResult> {
  const abort = new AbortController();
  const init = { signal: abort.signal };
  const answered = await withDeadline(
    () => (target.service ? target.service.fetch(request, init) : fetch(request, init)),
    timeoutMs,
  );
  if (answered.ok) return { ok: true, response: answered.value };
  if (answered.reason === "timeout") {
    // Nobody is waiting for this response any more: the origin connection is let go.
    abort.abort();
    return { ok: false, reason: "timeout", error: `no response headers within ${timeoutMs} ms` };
  }
  return { ok: false, reason: "unreachable", error: answered.error ?? "fetch failed" };
}

export function isHtml(response: Response): boolean {
  const type = response.headers.get("content-type") ?? "";
  return /^\s*(text\/html|application\/xhtml\+xml)/i.test(type);
}

/**
 * Copies the origin's response with mutable headers, fixing what a proxy must fix for every response.
 * `publicOrigin` is where the site is served (e.g. `https://shop.example`): redirects that name the
 * origin's host, on any port or scheme, are moved onto it; a Location on any other host is kept.
 */
export function relayHeaders(response: Response, publicOrigin: string, target: OriginTarget): Headers {
  const headers = new Headers(response.headers);
  stripHopByHop(headers);
  const location = headers.get("location");
  if (location) {
    try {
      const resolved = new URL(location, target.origin);
      if (resolved.hostname === target.origin.hostname)
        headers.set("location", onPublicOrigin(resolved, publicOrigin));
    } catch {
      // An unparsable Location goes back as the origin sent it.
    }
  }
  return headers;
}

/**
 * The same path, query and fragment on the public origin. Built from the public origin and never by
 * setting `host` (which keeps the old port when the new host names none), nor by resolving the path
 * against it (a path such as `//evil.example/x` would be read as another host).
 */
function onPublicOrigin(resolved: URL, publicOrigin: string): string {
  const moved = new URL(publicOrigin);
  moved.pathname = resolved.pathname;
  moved.search = resolved.search;
  moved.hash = resolved.hash;
  return moved.toString();
}

/**
 * Headers by which a shared cache (a CDN in front of the worker, Cloudflare's own) may keep a
 * response, or tag it to be found and purged: the targeted Cache-Control fields (RFC 9213), the
 * Surrogate-* ones and Expires. Purge tags go too: on a response no cache may keep they say nothing.
 */
const SHARED_CACHE_HEADERS = [
  "cdn-cache-control",
  "cloudflare-cdn-cache-control",
  "surrogate-control",
  "surrogate-key",
  "cache-tag",
  "expires",
];

/**
 * Marks a response as one visitor's alone: no cache keeps it, a browser's included (`no-store`), and
 * none of the origin's shared-cache directives survive to contradict that.
 */
export function privateToVisitor(headers: Headers): void {
  headers.set("cache-control", "private, no-store");
  for (const name of SHARED_CACHE_HEADERS) headers.delete(name);
  if (!/(^|,)\s*cookie\s*(,|$)/i.test(headers.get("vary") ?? "")) headers.append("vary", "Cookie");
}

/** A pass-through response: same status, headers (Set-Cookie kept one by one) and byte stream. */
export function passThrough(response: Response, headers: Headers): Response {
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

/**
 * The rewritten-HTML response. The body changes length, so Content-Length goes, and a strong
 * ETag would promise byte equality it no longer has: it is weakened.
 */
export function rewrittenHeaders(headers: Headers): Headers {
  headers.delete("content-length");
  const etag = headers.get("etag");
  if (etag && !etag.startsWith("W/")) headers.set("etag", `W/${etag}`);
  return headers;
}

/** A page the proxy answers itself when the origin fails: plain, honest, no stack trace, never cached. */
function originFailurePage(status: 502 | 504, title: string, message: string): Response {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"></head>
<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem">
<h1>This site is unavailable right now</h1><p>${message}</p>
</body></html>`;
  return new Response(html, {
    status,
    headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
  });
}

/** The page a visitor sees when the origin cannot be reached. */
export function badGateway(): Response {
  return originFailurePage(
    502,
    "Site unavailable",
    "We could not reach the site. Please try again in a moment.",
  );
}

/** The page a visitor sees when the origin does not answer within ORIGIN_TIMEOUT_MS. */
export function gatewayTimeout(): Response {
  return originFailurePage(
    504,
    "Site unavailable",
    "The site took too long to answer. Please try again in a moment.",
  );
}
