import { env, exports } from "cloudflare:workers";

export const BROWSER_UA =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0 Safari/537.36";
export const ADMIN = { authorization: `Bearer ${env.ADMIN_TOKEN as string}` };
export const SERVER = { authorization: `Bearer ${env.SERVER_API_KEY as string}` };

export function visit(path: string, init: RequestInit & { cookie?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has("user-agent")) headers.set("user-agent", BROWSER_UA);
  if (init.cookie) headers.set("cookie", init.cookie);
  return exports.default.fetch(
    new Request(`https://shop.test${path}`, { redirect: "manual", ...init, headers }),
  );
}

/** The `name=value` part of the visitor cookie a response sets. */
export function visitorCookie(res: Response): string {
  const set = res.headers.getSetCookie().find((c) => c.includes("ns_vid="));
  if (!set) throw new Error("no visitor cookie was set");
  return set.split(";")[0]!;
}

export async function newVisitor(): Promise<string> {
  const res = await visit("/");
  await res.arrayBuffer();
  return visitorCookie(res);
}

export function sendEvents(
  cookie: string,
  events: unknown[],
  init: { contentType?: string; headers?: Record<string, string> } = {},
) {
  return visit("/_ns/v1/events", {
    method: "POST",
    cookie,
    headers: { "content-type": init.contentType ?? "text/plain;charset=UTF-8", ...init.headers },
    body: JSON.stringify({ sentAt: Date.now(), events }),
  });
}

let counter = 0;
export const eid = () => `evt-${Date.now()}-${++counter}`;

export function idOf(cookie: string): string {
  return cookie.split("=")[1]!.split(".")[0]!;
}
