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

function stripHopByHop(headers: Headers): void {
  const listed = headers.get("connection");
  if (listed) {
    for (const name of listed.split(",")) headers.delete(name.trim());
  }
  for (const name of HOP_BY_HOP) headers.delete(name);
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
  stripHopByHop(headers);
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
  for (const name of [...headers.keys()]) {
    if (name.startsWith("cf-")) headers.delete(name);
  }
  const hasBody = request.method !== "GET" && request.method !== "HEAD";
  return new Request(url, {
    method: request.method,
    headers,
    body: hasBody ? request.body : null,
    redirect: "manual",
  });
}

export type OriginResult = { ok: true; response: Response } | { ok: false; error: string };

/** Fetches from the origin; a network failure is a value (the caller answers 502), not a throw. */
export async function fetchOrigin(request: Request, target: OriginTarget): Promise<OriginResult> {
  try {
    const response = target.service ? await target.service.fetch(request) : await fetch(request);
    return { ok: true, response };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

export function isHtml(response: Response): boolean {
  const type = response.headers.get("content-type") ?? "";
  return /^\s*(text\/html|application\/xhtml\+xml)/i.test(type);
}

/** Copies the origin's response with mutable headers, fixing what a proxy must fix for every response. */
export function relayHeaders(response: Response, proxyUrl: URL, target: OriginTarget): Headers {
  const headers = new Headers(response.headers);
  stripHopByHop(headers);
  const location = headers.get("location");
  if (location) {
    // Redirects go back to the browser; one that points at the origin host is moved to ours.
    try {
      const resolved = new URL(location, target.origin);
      if (resolved.host === target.origin.host) {
        resolved.protocol = proxyUrl.protocol;
        resolved.host = proxyUrl.host;
        headers.set("location", resolved.toString());
      }
    } catch {
      // An unparsable Location goes back as the origin sent it.
    }
  }
  return headers;
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

/** The page a visitor sees when the origin cannot be reached: plain, honest, no stack trace. */
export function badGateway(): Response {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Site unavailable</title>
<meta name="viewport" content="width=device-width,initial-scale=1"></head>
<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem">
<h1>This site is unavailable right now</h1><p>We could not reach the site. Please try again in a moment.</p>
</body></html>`;
  return new Response(html, {
    status: 502,
    headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
  });
}
