/**
 * The demo shop's outbox: the destination `npm start` points the journeys' webhooks at
 * (WEBHOOK_SMS/PUSH/EMAIL in wrangler.toml's [env.demo]). It does what docs/journeys.md asks of a
 * destination: checks the signature and its timestamp, keeps each Idempotency-Key once, answers 2xx
 * once the message is taken. Messages live in this isolate's memory: a demo, gone on restart.
 *
 *   POST /outbox/<channel>   a signed webhook            -> 202 (or 401 bad signature, 400 no key)
 *   GET  /outbox             every visitor's messages, newest first (?visitor=<id>; ?format=json)
 */
const enc = new TextEncoder();
const TOLERANCE_SECONDS = 300;

interface Message {
  readonly key: string;
  readonly receivedAt: string;
  readonly body: Record<string, unknown>;
}
const messages = new Map<string, Message>();

async function signatureOk(secret: string, header: string | null, body: string): Promise<boolean> {
  const m = /^t=(\d+),v1=([A-Za-z0-9_-]+)$/.exec(header ?? "");
  if (!m) return false;
  if (Math.abs(Date.now() / 1000 - Number(m[1])) > TOLERANCE_SECONDS) return false;
  const key = await crypto.subtle.importKey(
    "raw",
    enc.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(`${m[1]}.${body}`)));
  const expected = btoa(String.fromCharCode(...mac))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
  // Compared whole; a demo, but the habit is the one a real destination needs (constant time there).
  return expected.length === m[2]!.length && expected === m[2];
}

const escapeHtml = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

function page(list: Message[]): Response {
  const rows = list
    .map((m) => {
      const b = m.body;
      const content = escapeHtml(JSON.stringify((b.content as { json?: unknown })?.json ?? b.content));
      return `<tr><td>${escapeHtml(String(b.visitorId))}</td><td>${escapeHtml(String(b.journey))} / ${escapeHtml(String(b.step))}</td><td>${escapeHtml(String(b.channel))}</td><td><code>${content}</code></td><td>${escapeHtml(m.receivedAt)}</td></tr>`;
    })
    .join("");
  const html = `<!doctype html><html><head><title>Outbox</title><link rel="stylesheet" href="/assets/shop.css"></head><body><main><h1>Outbox</h1><p>Messages the journeys sent, as the destination received them (${list.length}).</p><table><tr><th>visitor</th><th>journey / step</th><th>channel</th><th>content</th><th>received</th></tr>${rows}</table></main></body></html>`;
  return new Response(html, {
    headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
  });
}

export async function outbox(request: Request, url: URL, secret: string | undefined): Promise<Response> {
  if (request.method === "POST") {
    const body = await request.text();
    if (!secret || !(await signatureOk(secret, request.headers.get("x-northstar-signature"), body)))
      return new Response("bad signature", { status: 401 });
    const key = request.headers.get("idempotency-key");
    if (!key) return new Response("no Idempotency-Key", { status: 400 });
    // A key seen before is the same message again (a retry): taken already, still a 2xx.
    if (!messages.has(key))
      messages.set(key, { key, receivedAt: new Date().toISOString(), body: JSON.parse(body) });
    return new Response(null, { status: 202 });
  }
  const visitor = url.searchParams.get("visitor");
  const list = [...messages.values()].filter((m) => !visitor || m.body.visitorId === visitor).reverse();
  if (url.searchParams.get("format") === "json") return Response.json({ messages: list });
  return page(list);
}
