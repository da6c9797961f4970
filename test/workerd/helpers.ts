import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import bundledDocument from "../../rules/northstar.rules.json";
import { hashRules, parseRules, type RulesKv } from "../../src/rules/index.ts";
import { ACTIVE_KEY, HISTORY_KEY, versionKey } from "../../src/rules/store.ts";
import { resetRulesCache } from "../../src/state/rules-loader.ts";
import type { VisitorDO } from "../../src/state/visitor-do.ts";

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

/** RULES as the CLI's wrangler adapter presents it to the store functions, here over the binding itself. */
export const rulesKv: RulesKv = {
  async get(key) {
    try {
      return { ok: true, value: await env.RULES.get(key, "json") };
    } catch (err) {
      return { ok: false, error: String(err) };
    }
  },
  async put(key, value) {
    await env.RULES.put(key, JSON.stringify(value));
    return { ok: true };
  },
};

/**
 * Injects a defect every attempt meets into one live visitor object: its scoring throws on events of
 * `type` (run inside runInDurableObject).
 */
export async function poisonScoring(instance: VisitorDO, type: string): Promise<void> {
  type Scoring = { scoreEvent(e: { type: string }): unknown };
  const poisoned = instance as unknown as { scoring: () => Promise<Scoring | null> };
  const real = await poisoned.scoring.call(instance);
  poisoned.scoring = async () => ({
    ...real!,
    scoreEvent: (e: { type: string }) => {
      if (e.type === type) throw new Error("scoring exploded");
      return real!.scoreEvent(e);
    },
  });
}

/**
 * The VISITOR binding with each object's decision-path call (`snapshot`) passed through `wrap`,
 * the rest of what the page path calls going to the real object.
 */
export function visitorsWithSnapshot(
  wrap: (snapshot: () => Promise<unknown>) => Promise<unknown>,
): typeof env.VISITOR {
  return {
    idFromName: (name: string) => env.VISITOR.idFromName(name),
    get: (id: DurableObjectId) => {
      const real = env.VISITOR.get(id);
      return {
        snapshot: (options: unknown) => wrap(() => real.snapshot(options as never)),
        recordDecision: (options: unknown) => real.recordDecision(options as never),
      };
    },
  } as unknown as typeof env.VISITOR;
}

/**
 * Publishes a rules document to the real RULES namespace as `npm run rules -- publish` lays it out
 * (the version key, the active pointer, the history), and forgets the isolate's rules so the next
 * request loads it. Returns the document's hash.
 */
export async function publishDoc(doc: Record<string, unknown>): Promise<string> {
  const parsed = parseRules(doc);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const hash = await hashRules(parsed.rules);
  await env.RULES.put(
    versionKey(parsed.rules.version),
    // The parsed document, as the CLI stores it: the loader checks the hash over what was stored.
    JSON.stringify({ hash, publishedAt: new Date().toISOString(), doc: parsed.rules }),
  );
  await env.RULES.put(ACTIVE_KEY, JSON.stringify({ version: parsed.rules.version, hash }));
  await env.RULES.put(HISTORY_KEY, JSON.stringify([{ version: parsed.rules.version, hash }]));
  resetRulesCache();
  return hash;
}

/** Two arms, control and bold, half each: the experiments these tests publish. */
export const HALVES = [
  { id: "control", weight: 50 },
  { id: "bold", weight: 50 },
];

/** The bundled rules as `version`, with `experiment` added (or replaced) under `id`; published. */
export function publishWithExperiment(version: string, id: string, experiment: Record<string, unknown>) {
  return publishDoc({
    ...bundledDocument,
    version,
    experiments: { ...bundledDocument.experiments, [id]: experiment },
  });
}

/** The bundled rules as `version`, with `globalHoldout` in their settings; published. */
export function publishWithGlobalHoldout(version: string, globalHoldout: Record<string, unknown>) {
  return publishDoc({
    ...bundledDocument,
    version,
    settings: { ...bundledDocument.settings, globalHoldout },
  });
}

/** Back to the bundled rules after a file that published its own: no pointer, no history, no cache. */
export async function unpublishRules(): Promise<void> {
  await env.RULES.delete(ACTIVE_KEY);
  await env.RULES.delete(HISTORY_KEY);
  resetRulesCache();
}

/**
 * The VISITOR binding with every call to a visitor's object named in `calls` (the method), then
 * passed to the real object: what a request costs in Durable Object requests, observed.
 */
export function countedVisitors(calls: string[]): typeof env.VISITOR {
  return {
    idFromName: (name: string) => env.VISITOR.idFromName(name),
    get: (id: DurableObjectId) => {
      const real = env.VISITOR.get(id);
      // Every property of a stub is a remote method: each is named, then called on the real stub.
      return new Proxy(
        {},
        {
          get(_, method) {
            if (typeof method !== "string" || method === "then") return undefined;
            return (...args: unknown[]) => {
              calls.push(method);
              return (real as unknown as Record<string, (...a: unknown[]) => unknown>)[method]!(...args);
            };
          },
        },
      );
    },
  } as unknown as typeof env.VISITOR;
}

/** What the write-behind timer does WRITE_BEHIND_MS after a page view: the visitor's held views are written. */
export function writeHeldViews(visitorId: string): Promise<void> {
  return runInDurableObject(env.VISITOR.get(env.VISITOR.idFromName(visitorId)), (instance: VisitorDO) => {
    (instance as unknown as { flushPending(): void }).flushPending();
  });
}
