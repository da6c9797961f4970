// The privacy gate (src/core/privacy.ts) seen from outside, inside workerd: for each privacy state a
// browser can be in, and each route it (or the site's server) calls, what Northstar then holds —
// read back the way a person or an admin can see it: the answer's status and Set-Cookie, the admin
// export (events, experiment rows), the experiment's report, and where no route shows it, the
// PROFILES keys and the visitor objects that hold anything.
import {
  createExecutionContext,
  listDurableObjectIds,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { handle } from "../../src/http/app.ts";
import type { Env } from "../../src/platform/env.ts";
import { canonicalForUser, issueVisitorId, signIdentityToken } from "../../src/state/visitor-id.ts";
import { ADMIN, BROWSER_UA, eid, idOf, SERVER } from "./helpers.ts";

const optOut = env as unknown as Env;
/** The same deployment under the GDPR: nothing kept, used or counted before a grant. */
const optIn = { ...env, CONSENT_MODE: "opt-in" } as unknown as Env;
const GPC = { "sec-gpc": "1" };

let users = 0;
const newUser = () => `gate-${Date.now()}-${++users}@example.com`;
const inFiveMinutes = () => Math.floor(Date.now() / 1000) + 300;

/** One request to the worker as deployed in `deployment`, its background work (waitUntil) finished. */
async function call(
  deployment: Env,
  path: string,
  init: RequestInit & { cookie?: string | null } = {},
): Promise<{ res: Response; body: string }> {
  const headers = new Headers(init.headers);
  if (!headers.has("user-agent")) headers.set("user-agent", BROWSER_UA);
  if (init.cookie) headers.set("cookie", init.cookie);
  const ctx = createExecutionContext();
  const res = await handle(
    new Request(`https://shop.test${path}`, { ...init, headers, redirect: "manual" }),
    deployment,
    ctx,
  );
  const body = await res.text();
  await waitOnExecutionContext(ctx);
  return { res, body };
}

/** The `name=value` of the visitor cookie an answer sets, if it sets one. */
function cookieSet(res: Response): string | null {
  const set = res.headers.getSetCookie().find((c) => c.includes("ns_vid="));
  return set ? set.split(";")[0]! : null;
}

/** A browser as the table meets it: the deployment it visits, what it sends, who signs in on it. */
interface Browser {
  readonly deployment: Env;
  /** The visitor cookie it holds (`name=value`), or null. */
  readonly cookie: string | null;
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The anonymous id the site's backend names when it links this browser: its cookie's, or for a
   * browser without one, an id of the backend's own.
   */
  readonly anonymousId: string;
  /** The person who signs in on this browser. */
  readonly userId: string;
}

/**
 * A first visit to a category page (no A/B test there), then its beacon's first call, the page view
 * (a first page alone stores nothing): the cookie it leaves with, if any.
 */
async function arrive(deployment: Env, headers: Record<string, string> = {}): Promise<string | null> {
  const { res, body } = await call(deployment, "/running", { headers });
  const cookie = cookieSet(res);
  expect(body).not.toContain('data-auto-pageview="false"');
  const view = await call(deployment, "/_ns/v1/events", {
    method: "POST",
    cookie,
    headers: { "content-type": "text/plain;charset=UTF-8", ...headers },
    body: JSON.stringify({ events: [{ id: eid(), type: "page_view", props: { path: "/running" } }] }),
  });
  expect(view.res.status).toBe(202);
  return cookie;
}

function browser(deployment: Env, cookie: string | null, headers: Record<string, string> = {}): Browser {
  return {
    deployment,
    cookie,
    headers,
    anonymousId: cookie ? idOf(cookie) : issueVisitorId(),
    userId: newUser(),
  };
}

async function signIn(b: Browser) {
  const token = await signIdentityToken(env.IDENTITY_SECRET as string, b.userId, inFiveMinutes());
  return call(b.deployment, "/_ns/v1/identify", {
    method: "POST",
    cookie: b.cookie,
    headers: { "content-type": "application/json", ...b.headers },
    body: JSON.stringify({ token }),
  });
}

/** Signed in, then erased by an admin; the browser comes back with the cookie it had before or after signing in. */
async function erasedBrowser(keeps: "before" | "after"): Promise<Browser> {
  const anonymous = browser(optOut, await arrive(optOut));
  const login = await signIn(anonymous);
  expect(login.res.status).toBe(200);
  const erased = await call(optOut, `/_ns/v1/profiles/user:${encodeURIComponent(anonymous.userId)}`, {
    method: "DELETE",
    headers: ADMIN,
  });
  expect(erased.res.status).toBe(200);
  if (keeps === "before") return anonymous;
  const cookie = cookieSet(login.res)!;
  return { ...anonymous, cookie, anonymousId: idOf(cookie) };
}

/** The privacy states, each as a browser in it. Every browser but a new one has a history (its first page). */
const STATES = {
  /** The control: opt-out, no signal. */
  none: async () => browser(optOut, await arrive(optOut)),
  "none, new browser": async () => browser(optOut, null),
  /** Global Privacy Control turned on after a first visit: every later request carries it. */
  gpc: async () => browser(optOut, await arrive(optOut), GPC),
  withdrawn: async () => {
    const cookie = await arrive(optOut);
    const withdrawn = await call(optOut, "/_ns/v1/consent", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ purposes: { personalization: false, measurement: false } }),
    });
    expect(withdrawn.res.status).toBe(200);
    return browser(optOut, cookie);
  },
  "opt-in pending, new browser": async () => browser(optIn, null),
  /** A cookie from before the site turned opt-in on (its first page was stored then). */
  "opt-in pending, cookie from before": async () => browser(optIn, await arrive(optOut)),
  "erased, cookie from before sign-in": () => erasedBrowser("before"),
  "erased, cookie from sign-in": () => erasedBrowser("after"),
} satisfies Record<string, () => Promise<Browser>>;
type State = keyof typeof STATES;

/** What a user (or the site's backend) does on each route. */
const ROUTES = {
  /** The home page: the hero-test A/B placement. */
  page: (b: Browser) => call(b.deployment, "/", { cookie: b.cookie, headers: b.headers }),
  /** The browser with its cookie, with an event in the call. */
  decide: (b: Browser) =>
    call(b.deployment, "/_ns/v1/decide", {
      method: "POST",
      cookie: b.cookie,
      headers: { "content-type": "application/json", ...b.headers },
      body: JSON.stringify({
        channel: "web",
        placements: ["home-hero"],
        events: [{ id: eid(), type: "page_view", props: { path: "/sale" } }],
      }),
    }),
  /** The beacon (text/plain). */
  events: (b: Browser) =>
    call(b.deployment, "/_ns/v1/events", {
      method: "POST",
      cookie: b.cookie,
      headers: { "content-type": "text/plain;charset=UTF-8", ...b.headers },
      body: JSON.stringify({ events: [{ id: eid(), type: "product_view", props: { category: "hiking" } }] }),
    }),
  /** The site's backend after a login (it forwards the browser's Sec-GPC, as it should). */
  "identify (server)": (b: Browser) =>
    call(b.deployment, "/_ns/v1/identify", {
      method: "POST",
      headers: { "content-type": "application/json", ...SERVER, ...b.headers },
      body: JSON.stringify({ anonymousId: b.anonymousId, userId: b.userId }),
    }),
  /** The browser itself, with a token the site's backend signed. */
  "identify (token)": signIn,
  /** The site's backend backfilling older history of this browser's visitor (forwarding its Sec-GPC). */
  "events import (server)": (b: Browser) =>
    call(b.deployment, "/_ns/v1/events/import", {
      method: "POST",
      headers: { "content-type": "application/x-ndjson", ...SERVER, ...b.headers },
      body: JSON.stringify({
        id: b.anonymousId,
        event: { id: eid(), type: "email_open", ts: Date.now() - 86400e3, channel: "email" },
      }),
    }),
} satisfies Record<string, (b: Browser) => Promise<{ res: Response; body: string }>>;
type Route = keyof typeof ROUTES;

/** What a cell reads back after the call. */
interface Stored {
  readonly status: number;
  /** Why the answer says it kept nothing (`reason`, or a refusal's `error`); null when it does not say. */
  readonly refusal: string | null;
  /** The answer sets the visitor cookie. */
  readonly cookie: boolean;
  /** Types of the events held for the browser (its visitor and its person) that were not held before. */
  readonly events: readonly string[];
  /** A decision from decide used held behaviour (its intent scores); null when none was answered. */
  readonly uses: boolean | null;
  /** hero-test exposures added, holdout included (the experiment's report). */
  readonly exposures: number;
  /** PROFILES keys written, ids named by role: `<visitor>` (the browser's) and `<person>`. */
  readonly keys: readonly string[];
  /** Visitor objects that did not exist before and now hold anything. */
  readonly objects: number;
  /** Status of the admin export of the browser's visitor id (null: it has none). */
  readonly visitorExport: number | null;
  /** Status of the admin export of the person who signs in on it. */
  readonly personExport: number;
}

async function exposuresCounted(): Promise<number> {
  const { body } = await call(optOut, "/_ns/v1/experiments/hero-test", { headers: ADMIN });
  const counts = JSON.parse(body) as {
    holdout: { exposures: number } | null;
    report: { arms: Array<{ exposures: number }> };
  };
  return counts.report.arms.reduce((sum, arm) => sum + arm.exposures, counts.holdout?.exposures ?? 0);
}

type Export = { state: { events: Array<{ id: string; type: string }> } | null };

async function exported(id: string): Promise<{ status: number; events: ReadonlyMap<string, string> }> {
  const { res, body } = await call(optOut, `/_ns/v1/profiles/${encodeURIComponent(id)}`, { headers: ADMIN });
  const held = res.status === 200 ? (JSON.parse(body) as Export).state?.events : [];
  return { status: res.status, events: new Map((held ?? []).map((e) => [e.id, e.type])) };
}

/** Events held under any of these ids (the export resolves an alias to its person), by event id. */
async function heldEvents(ids: readonly string[]): Promise<Map<string, string>> {
  const all = new Map<string, string>();
  for (const id of ids) for (const [eventId, type] of (await exported(id)).events) all.set(eventId, type);
  return all;
}

async function profileKeyNames(): Promise<Set<string>> {
  const names = new Set<string>();
  let cursor: string | undefined;
  do {
    const page = await env.PROFILES.list(cursor ? { cursor } : {});
    for (const k of page.keys) names.add(k.name);
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return names;
}

/** The values of the keys these ids can have (a key rewritten in place is not found by listing). */
async function profileValues(ids: readonly string[]): Promise<Map<string, string | null>> {
  const values = new Map<string, string | null>();
  for (const id of ids)
    for (const key of [`profile:${id}`, `alias:${id}`, `aliases:${id}`])
      values.set(key, await env.PROFILES.get(key));
  return values;
}

/** Whether a visitor object holds a row in any of its tables. */
function holdsAnything(id: DurableObjectId): Promise<boolean> {
  return runInDurableObject(env.VISITOR.get(id), async (_instance, state) => {
    const tables = state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      .toArray()
      .map((t) => t.name)
      .filter((name) => !name.startsWith("_cf") && !name.startsWith("sqlite"));
    return tables.some(
      (name) => state.storage.sql.exec(`SELECT 1 FROM "${name}" LIMIT 1`).toArray().length > 0,
    );
  });
}

async function visitorObjectIds(): Promise<Set<string>> {
  return new Set((await listDurableObjectIds(env.VISITOR)).map((id) => id.toString()));
}

/** Does what the route does for this browser, and reads back what Northstar now holds. */
async function observe(b: Browser, route: Route): Promise<Stored> {
  const person = await canonicalForUser(b.userId);
  const known = [b.anonymousId, person];
  const before = {
    objects: await visitorObjectIds(),
    exposures: await exposuresCounted(),
    keys: await profileKeyNames(),
    values: await profileValues(known),
    events: await heldEvents(known),
  };

  const { res, body } = await ROUTES[route](b);

  const set = cookieSet(res);
  // A browser without a cookie is known by the one it was just given (not a person's, from identify).
  const visitor = b.cookie ? idOf(b.cookie) : set && !idOf(set).startsWith("u_") ? idOf(set) : null;
  const ids = [...new Set([...(visitor ? [visitor] : []), ...known])];
  const created = [...(await visitorObjectIds())].filter((id) => !before.objects.has(id));
  const filled = await Promise.all(created.map((id) => holdsAnything(env.VISITOR.idFromString(id))));
  const values = await profileValues(ids);
  const written = [
    ...[...(await profileKeyNames())].filter((k) => !before.keys.has(k)),
    ...[...values].filter(([k, v]) => before.keys.has(k) && v !== before.values.get(k)).map(([k]) => k),
  ];
  const roles: Array<[string, string]> = [
    [person, "<person>"],
    [b.anonymousId, "<visitor>"],
    [visitor ?? b.anonymousId, "<visitor>"],
  ];
  const role = (key: string) => roles.reduce((named, [id, name]) => named.replace(id, name), key);
  const events = await heldEvents(ids);
  const answer = res.headers.get("content-type")?.includes("json")
    ? (JSON.parse(body) as {
        reason?: string;
        error?: string;
        intent?: { scores: object };
        visitors?: Array<{ refused: Array<{ reason: string }> }>;
      })
    : null;
  const decided = route === "decide" && res.status === 200 ? answer : null;
  return {
    status: res.status,
    // An import answers per line: its one line's refusal.
    refusal: answer?.reason ?? answer?.error ?? answer?.visitors?.[0]?.refused[0]?.reason ?? null,
    cookie: set !== null,
    events: [...events].filter(([id]) => !before.events.has(id)).map(([, type]) => type),
    uses: decided ? Object.keys(decided.intent?.scores ?? {}).length > 0 : null,
    exposures: (await exposuresCounted()) - before.exposures,
    keys: [...new Set(written.map(role))].sort(),
    objects: filled.filter(Boolean).length,
    visitorExport: visitor ? (await exported(visitor)).status : null,
    personExport: (await exported(person)).status,
  };
}

/** What a cell expects unless it says otherwise: nothing kept, used, counted, linked or set. */
function outcome(
  route: Route,
  exports: [number | null, number],
  stored: Partial<Stored> & { status: number },
): Stored {
  const [visitorExport, personExport] = exports;
  const nothing = { refusal: null, cookie: false, events: [], exposures: 0, keys: [], objects: 0 };
  const decided = route === "decide" && stored.status === 200;
  return { ...nothing, uses: decided ? false : null, visitorExport, personExport, ...stored };
}

/** Each state but the control: its answers (status, and why nothing was kept), and what its exports answer. */
function storesNothing(
  state: State,
  answers: Partial<Record<Route, readonly [number, string?]>>,
  exports: [number | null, number],
): Array<[State, Route, Stored]> {
  return Object.entries(answers).map(([route, [status, refusal]]) => [
    state,
    route as Route,
    outcome(route as Route, exports, { status, refusal: refusal ?? null }),
  ]);
}

/** The page and a decision are served; the browser's events are acknowledged, not kept. */
const SERVED = { page: [200], decide: [200] } as const;
const refused = (why: "gpc" | "consent") =>
  ({
    events: [202, why],
    "identify (server)": [200, why],
    "identify (token)": [200, why],
    "events import (server)": [
      200,
      why === "gpc"
        ? "not recorded: the request carries Sec-GPC: 1"
        : "not recorded: this person has not consented to personalization",
    ],
  }) as const;
/** An erased person: pages are served; everything that would write refuses, naming why. */
const ERASED = {
  page: [200],
  decide: [410, "suppressed"],
  events: [410, "suppressed"],
  "identify (server)": [410, "suppressed"],
  "identify (token)": [410, "suppressed"],
  // An import answers per line: the line is refused, the others of the file would not be.
  "events import (server)": [200, "suppressed: this person's data was erased"],
} as const;

/** A browser with a cookie is linked the same way by its backend and by a token of its own. */
const LINKED = ["alias:<visitor>", "aliases:<person>", "profile:<visitor>"];

const CELLS: Array<[State, Route, Stored]> = [
  // The control row: what every other row must not do is done here, so each cell can fail.
  ["none", "page", outcome("page", [200, 404], { status: 200, events: ["page_view"], exposures: 1 })],
  [
    "none",
    "decide",
    outcome("decide", [200, 404], { status: 200, events: ["page_view"], uses: true, exposures: 1 }),
  ],
  ["none", "events", outcome("events", [200, 404], { status: 202, events: ["product_view"] })],
  [
    "none",
    "identify (server)",
    outcome("identify (server)", [200, 200], { status: 200, keys: LINKED, objects: 1 }),
  ],
  [
    "none",
    "identify (token)",
    outcome("identify (token)", [200, 200], { status: 200, cookie: true, keys: LINKED, objects: 1 }),
  ],
  [
    "none",
    "events import (server)",
    outcome("events import (server)", [200, 404], { status: 200, events: ["email_open"] }),
  ],
  // A new browser has no cookie to call decide with (a 400, whatever the state): no decide cell.
  // Its first page is decided from the request alone and touches no visitor object: its beacon's
  // first call stores the view, its next page counts it in the A/B test (docs/decisions.md, record 12).
  ["none, new browser", "page", outcome("page", [404, 404], { status: 200, cookie: true })],
  [
    "none, new browser",
    "events",
    outcome("events", [200, 404], { status: 202, cookie: true, events: ["product_view"], objects: 1 }),
  ],
  // The backend's own anonymous id gets an object (its forwarding address) and the person one.
  [
    "none, new browser",
    "identify (server)",
    outcome("identify (server)", [null, 200], { status: 200, keys: LINKED, objects: 2 }),
  ],
  // The backend's own anonymous id gets an object holding the history.
  [
    "none, new browser",
    "events import (server)",
    outcome("events import (server)", [null, 404], { status: 200, events: ["email_open"], objects: 1 }),
  ],
  // Nothing to merge: the person's object only records the token as spent, which no export shows.
  [
    "none, new browser",
    "identify (token)",
    outcome("identify (token)", [null, 404], { status: 200, cookie: true, objects: 1 }),
  ],

  // Every route names the gate's reason: the browser's GPC signal, or the consent it lacks.
  ...storesNothing("gpc", { ...SERVED, ...refused("gpc") }, [200, 404]),
  ...storesNothing("withdrawn", { ...SERVED, ...refused("consent") }, [200, 404]),
  ...storesNothing("opt-in pending, new browser", { page: [200], ...refused("consent") }, [null, 404]),
  ...storesNothing("opt-in pending, cookie from before", { ...SERVED, ...refused("consent") }, [200, 404]),
  ...storesNothing("erased, cookie from before sign-in", ERASED, [404, 404]),
  ...storesNothing("erased, cookie from sign-in", ERASED, [404, 404]),
];

/** The cell's title says what it checks, in words. */
function title(state: State, route: Route, x: Stored): string {
  const kept = [
    ...x.events,
    ...x.keys,
    ...(x.objects ? [`${x.objects} new object${x.objects > 1 ? "s" : ""}`] : []),
    ...(x.cookie ? ["the cookie"] : []),
  ];
  const stores = kept.length ? `stores ${kept.join(", ")}` : "stores nothing";
  const counts = x.exposures ? `counts ${x.exposures} exposure` : "counts nothing";
  const uses = x.uses === null ? "" : x.uses ? ", decides from the history" : ", decides without it";
  const exports = `export ${x.visitorExport ?? "–"} (visitor) / ${x.personExport} (person)`;
  const answers = `answers ${x.status}${x.refusal ? ` (${x.refusal})` : ""}`;
  return `${state} × ${route} ${stores} and ${counts}${uses}; ${answers}; ${exports}`;
}

describe("the privacy gate, every state × every route", () => {
  // Rows as arrays: "%s" prints the whole title, where "$name" would cut it at 40 characters.
  it.each(
    CELLS.map(([state, route, expected]) => [title(state, route, expected), state, route, expected] as const),
  )("%s", async (_title, state, route, expected) => {
    expect(await observe(await STATES[state](), route)).toEqual(expected);
  });
});

/** PROFILES whose first write of `key` fails (as a KV write can), every other call going through. */
function failingFirstPut(key: string, failed: () => void): KVNamespace {
  let failedOnce = false;
  return new Proxy(env.PROFILES, {
    get(target, prop) {
      if (prop === "put")
        return (name: string, ...rest: unknown[]) => {
          if (name === key && !failedOnce) {
            failedOnce = true;
            failed();
            return Promise.reject(new Error(`KV put failed: ${name}`));
          }
          return (target.put as (...args: unknown[]) => Promise<void>)(name, ...rest);
        };
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("identify is idempotent", () => {
  it("a retry after a failed KV write answers 200 and the person's export holds the anonymous visitor's traits and history", async () => {
    const cookie = await arrive(optOut);
    const anonymous = idOf(cookie!);
    const traits = await call(optOut, `/_ns/v1/profiles/${anonymous}/traits`, {
      method: "PUT",
      headers: { ...ADMIN, "content-type": "application/json" },
      body: JSON.stringify({ tier: "silver" }),
    });
    expect(traits.res.status).toBe(200);
    const userId = newUser();
    const person = await canonicalForUser(userId);
    const identify = (deployment: Env) =>
      call(deployment, "/_ns/v1/identify", {
        method: "POST",
        headers: { "content-type": "application/json", ...SERVER },
        body: JSON.stringify({ anonymousId: anonymous, userId }),
      });

    let failures = 0;
    const flaky = { ...env, PROFILES: failingFirstPut(`profile:${person}`, () => failures++) } as Env;
    const first = await identify(flaky);
    expect(failures).toBe(1);
    // A store failure is not acknowledged (503 once store deadlines land; 500 before).
    expect([500, 503]).toContain(first.res.status);

    const retry = await identify(optOut);
    expect(retry.res.status).toBe(200);
    expect(JSON.parse(retry.body)).toMatchObject({ visitorId: person, linked: true });
    const { res, body } = await call(optOut, `/_ns/v1/profiles/user:${encodeURIComponent(userId)}`, {
      headers: ADMIN,
    });
    expect(res.status).toBe(200);
    const held = JSON.parse(body) as Export & { traits: Record<string, unknown>; aliases: string[] };
    expect(held.traits).toEqual({ tier: "silver" });
    expect(held.aliases).toEqual([anonymous]);
    expect(held.state?.events.map((e) => e.type)).toEqual(["page_view"]);
    // What stays under the anonymous id is the way to the person, no copy of the traits.
    expect(await env.PROFILES.get(`profile:${anonymous}`, "json")).toMatchObject({
      traits: {},
      consent: {},
      canonical: person,
    });
  });
});
