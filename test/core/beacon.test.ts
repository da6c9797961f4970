import { Script } from "node:vm";
import { describe, expect, it } from "vitest";
import { BEACON_MAX_BATCH, BEACON_VERSION, beaconScript } from "../../src/edge/beacon.ts";

/** What `Date.now()` answers inside the simulated page. */
const PAGE_NOW = Date.UTC(2026, 10, 22, 10, 0, 0);

// The beacon as a browser runs it: the served source, evaluated in a fresh context with just enough
// window/document/navigator to stand in for a page of the demo shop. Only what leaves the page
// (requests, their URLs and bodies) is asserted, as a site owner would check in devtools.

interface Sent {
  url: string;
  via: "sendBeacon" | "fetch";
  contentType: string;
  body: string;
  credentials?: string;
  keepalive?: boolean;
}

interface Batch {
  sentAt: number;
  events: Array<{ id: string; type: string; ts: number; channel: string; props: Record<string, unknown> }>;
}

type Listener = (ev: unknown) => void;

/** An element: enough of the DOM for `dataset`, `closest("[data-ns-event]")` and event targets. */
class FakeElement {
  readonly nodeType = 1;
  readonly dataset: Record<string, string>;
  readonly parentElement: FakeElement | null;
  constructor(data: Record<string, string> = {}, parent: FakeElement | null = null) {
    this.dataset = { ...data };
    this.parentElement = parent;
  }
  closest(selector: string): FakeElement | null {
    if (selector !== "[data-ns-event]") throw new Error(`unexpected selector ${selector}`);
    for (let el: FakeElement | null = this; el; el = el.parentElement) {
      if (el.dataset.nsEvent !== undefined) return el;
    }
    return null;
  }
}

interface PageOptions {
  script?: Record<string, string> | null;
  body?: Record<string, string> | null;
  /** What the site ran before the beacon loaded. */
  before?: string;
  sendBeacon?: "ok" | "refuses" | "missing";
  fetchThrows?: boolean;
  /** What the worker answers the event posts, in order (then 202): a status and any Retry-After. */
  answers?: Array<{ status: number; retryAfter?: string }>;
  path?: string;
}

function page(opts: PageOptions = {}) {
  const sent: Sent[] = [];
  const consoleCalls: unknown[][] = [];
  const docListeners = new Map<string, Listener[]>();
  const winListeners = new Map<string, Listener[]>();
  let timers: Array<{ id: number; fn: () => void; ms: number }> = [];
  let nextTimer = 1;
  const on = (map: Map<string, Listener[]>) => (type: string, fn: Listener) =>
    map.set(type, [...(map.get(type) ?? []), fn]);
  const path = opts.path ?? "/running/trail-runner-2";
  const body = opts.body === null ? null : new FakeElement(opts.body ?? {});
  const document = {
    currentScript: opts.script === null ? null : new FakeElement(opts.script ?? { prefix: "/_ns" }),
    body,
    title: "Trail Runner 2 · Summit & Stride",
    referrer: "https://www.example.com/search?q=trail+shoes",
    visibilityState: "visible",
    addEventListener: on(docListeners),
  };
  const navigator: Record<string, unknown> = {};
  const pendingReads: Promise<void>[] = [];
  if (opts.sendBeacon !== "missing") {
    navigator.sendBeacon = (url: string, data: Blob) => {
      if (opts.sendBeacon === "refuses") return false;
      sent.push({ url, via: "sendBeacon", contentType: data.type, body: "" });
      const entry = sent[sent.length - 1]!;
      pendingReads.push(
        data.text().then((text) => {
          entry.body = text;
        }),
      );
      return true;
    };
  }
  const fetch = (url: string, init: RequestInit) => {
    if (opts.fetchThrows) throw new TypeError("Failed to fetch");
    sent.push({
      url,
      via: "fetch",
      contentType: new Headers(init.headers).get("content-type") ?? "",
      body: String(init.body),
      credentials: init.credentials,
      keepalive: init.keepalive,
    });
    const answer = url.endsWith("/v1/events") ? opts.answers?.shift() : undefined;
    const headers: Record<string, string> = answer?.retryAfter ? { "retry-after": answer.retryAfter } : {};
    return Promise.resolve(new Response("{}", { status: answer?.status ?? 202, headers }));
  };
  const quiet = (...args: unknown[]) => void consoleCalls.push(args);
  const window: Record<string, unknown> = {
    document,
    navigator,
    location: { href: `https://shop.example${path}?utm_source=mail`, pathname: path },
    fetch,
    Blob,
    crypto: globalThis.crypto,
    Promise,
    JSON,
    // The page's clock stands still, so event times can be checked exactly.
    Date: { now: () => PAGE_NOW },
    console: { log: quiet, warn: quiet, error: quiet, info: quiet, debug: quiet },
    setTimeout: (fn: () => void, ms: number) => {
      const id = nextTimer++;
      timers.push({ id, fn, ms });
      return id;
    },
    clearTimeout: (id: number) => {
      timers = timers.filter((t) => t.id !== id);
    },
    addEventListener: on(winListeners),
  };
  window.window = window;

  const load = () => new Script(beaconScript({ prefix: "/_ns" })).runInNewContext(window);
  if (opts.before) new Script(opts.before).runInNewContext(window);
  load();

  return {
    window,
    document,
    sent,
    consoleCalls,
    load,
    /** Delays of the timers waiting to fire. */
    timerDelays: () => timers.map((t) => t.ms),
    /** The flush timer fires. */
    tick() {
      const due = timers;
      timers = [];
      for (const t of due) t.fn();
    },
    click(target: FakeElement) {
      for (const fn of docListeners.get("click") ?? []) fn({ target });
    },
    hide() {
      document.visibilityState = "hidden";
      for (const fn of docListeners.get("visibilitychange") ?? []) fn({});
    },
    pagehide() {
      for (const fn of winListeners.get("pagehide") ?? []) fn({});
    },
    /** Event batches posted to the events endpoint, bodies parsed. */
    async batches(): Promise<Batch[]> {
      await Promise.all(pendingReads);
      return sent.filter((s) => s.url === "/_ns/v1/events").map((s) => JSON.parse(s.body) as Batch);
    },
    async events() {
      return (await this.batches()).flatMap((b) => b.events);
    },
    /** What the page sees as `window.northstar`. */
    get northstar() {
      return window.northstar as {
        track(type: string, props?: object): void;
        identify(token: string): Promise<boolean>;
        q: unknown[][];
      };
    },
  };
}

/** Lets the page's promise callbacks run (what a fetch's answer sets off). */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

const PRODUCT_BODY = { nsTags: "running,trail,shoes", nsCategory: "running", nsProduct: "trail-runner-2" };

describe("the beacon", () => {
  it("reports the page view with the page's tags and category, batched on a 1 s timer", async () => {
    const p = page({ body: { nsTags: "running, trail", nsCategory: "running" }, path: "/running" });
    expect(p.sent).toHaveLength(0); // nothing leaves before the timer (or the page hiding)
    expect(p.timerDelays()).toEqual([1000]);
    p.tick();
    const batches = await p.batches();
    expect(batches).toHaveLength(1);
    const [view] = batches[0]!.events;
    expect(view).toMatchObject({
      type: "page_view",
      channel: "web",
      props: {
        url: "https://shop.example/running?utm_source=mail",
        path: "/running",
        title: "Trail Runner 2 · Summit & Stride",
        referrer: "https://www.example.com/search?q=trail+shoes",
        tags: ["running", "trail"],
        category: "running",
      },
    });
    expect(view!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(view!.ts).toBe(PAGE_NOW);
    expect(batches[0]!.sentAt).toBe(PAGE_NOW);
    // The visitor id is not in the body: it travels in the HttpOnly cookie.
    expect(JSON.stringify(batches[0])).not.toMatch(/visitor/i);
  });

  it("goes out as text/plain (no CORS preflight): by keepalive same-origin fetch while shown, by sendBeacon when hidden or fetch fails", async () => {
    for (const sendBeacon of ["ok", "missing"] as const) {
      const p = page({ body: PRODUCT_BODY, sendBeacon });
      p.tick();
      expect(p.sent).toHaveLength(1);
      expect(p.sent[0]).toMatchObject({
        via: "fetch",
        url: "/_ns/v1/events",
        contentType: "text/plain",
        credentials: "same-origin",
        keepalive: true,
      });
      expect((await p.events()).map((e) => e.type)).toEqual(["page_view", "product_view"]);
    }
    const hidden = page({ body: PRODUCT_BODY });
    hidden.hide();
    const failing = page({ body: PRODUCT_BODY, fetchThrows: true });
    failing.tick();
    for (const p of [hidden, failing]) {
      expect(p.sent.map((s) => [s.via, s.url, s.contentType])).toEqual([
        ["sendBeacon", "/_ns/v1/events", "text/plain"],
      ]);
      expect((await p.events()).map((e) => e.type)).toEqual(["page_view", "product_view"]);
    }
  });

  it("retries a batch answered 503 or 429: after Retry-After, else 1, 2, 4 s; three times at most; the same event ids", async () => {
    const p = page({
      body: PRODUCT_BODY,
      answers: [{ status: 503, retryAfter: "3" }, { status: 429 }, { status: 503 }, { status: 503 }],
    });
    const delays: number[][] = [];
    p.tick(); // the batch's first try
    for (let i = 0; i < 4; i++) {
      await settled();
      delays.push(p.timerDelays());
      p.tick();
    }
    expect(delays).toEqual([[3000], [2000], [4000], []]);
    const batches = await p.batches();
    expect(batches).toHaveLength(4);
    const ids = batches.map((b) => b.events.map((e) => e.id).join());
    expect(new Set(ids).size).toBe(1);
  });

  it("a batch that was stored (202) or refused for good (400) is not sent again; a retry when hidden goes by sendBeacon", async () => {
    for (const status of [202, 400]) {
      const p = page({ body: PRODUCT_BODY, answers: [{ status }] });
      p.tick();
      await settled();
      expect(p.timerDelays()).toEqual([]);
      expect(await p.batches()).toHaveLength(1);
    }
    const p = page({ body: PRODUCT_BODY, answers: [{ status: 503, retryAfter: "1" }] });
    p.tick();
    await settled();
    p.hide();
    p.tick();
    expect(p.sent.map((s) => s.via)).toEqual(["fetch", "sendBeacon"]);
    expect(new Set((await p.events()).map((e) => e.id)).size).toBe(2);
  });

  it("a product page also reports a product view naming the product", async () => {
    const p = page({ body: PRODUCT_BODY });
    p.tick();
    const events = await p.events();
    expect(events.map((e) => e.type)).toEqual(["page_view", "product_view"]);
    expect(events[1]!.props).toEqual({
      path: "/running/trail-runner-2",
      productId: "trail-runner-2",
      category: "running",
      tags: ["running", "trail", "shoes"],
    });
  });

  it("a click inside an element with data-ns-event sends that event with its data-ns-* props, at once", async () => {
    const p = page({ body: PRODUCT_BODY });
    const button = new FakeElement(
      {
        nsEvent: "add_to_cart",
        nsProduct: "trail-runner-2",
        nsCategory: "running",
        nsTags: "running,trail",
        nsValue: "129",
        nsCurrency: "USD",
      },
      new FakeElement({ nsEvent: "outer_should_not_win" }),
    );
    p.click(new FakeElement({}, button)); // the label inside the button
    // Sent without waiting for the timer: the click may navigate away.
    const events = await p.events();
    const cart = events.find((e) => e.type === "add_to_cart");
    expect(cart?.props).toEqual({
      path: "/running/trail-runner-2",
      productId: "trail-runner-2",
      category: "running",
      tags: ["running", "trail"],
      value: 129,
      currency: "USD",
    });
    expect(events.some((e) => e.type === "outer_should_not_win")).toBe(false);
  });

  it("clicks elsewhere send nothing; a value that is not a number is left out", async () => {
    const p = page({ body: null, script: { prefix: "/_ns", autoPageview: "false" } });
    p.click(new FakeElement({ nsProduct: "no-event-here" }));
    p.tick();
    expect(p.sent).toHaveLength(0);
    p.click(new FakeElement({ nsEvent: "purchase", nsValue: "call us" }));
    expect((await p.events()).map((e) => [e.type, e.props])).toEqual([
      ["purchase", { path: "/running/trail-runner-2" }],
    ]);
  });

  it('data-auto-pageview="false" (the proxy counted the view itself) leaves page views out', async () => {
    const p = page({ body: { nsTags: "hiking" }, script: { prefix: "/_ns", autoPageview: "false" } });
    p.northstar.track("newsletter_signup");
    p.tick();
    expect((await p.events()).map((e) => e.type)).toEqual(["newsletter_signup"]);
  });

  it("calls queued before the script loaded are sent; pushes after load run at once", async () => {
    const p = page({
      body: PRODUCT_BODY,
      before: `window.northstar = window.northstar || { q: [] };
        northstar.q.push(["track", "size_guide_open", { productId: "trail-runner-2" }]);
        northstar.q.push(["identify", "signed.token"]);`,
    });
    p.northstar.q.push(["track", "wishlist_add", { productId: "road-racer" }]);
    p.tick();
    const events = await p.events();
    expect(events.map((e) => e.type)).toEqual(
      expect.arrayContaining(["page_view", "product_view", "size_guide_open", "wishlist_add"]),
    );
    expect(events.find((e) => e.type === "size_guide_open")?.props).toEqual({ productId: "trail-runner-2" });
    const identify = p.sent.filter((s) => s.url === "/_ns/v1/identify");
    expect(identify).toHaveLength(1);
    expect(identify[0]).toMatchObject({
      via: "fetch",
      contentType: "application/json",
      credentials: "same-origin",
    });
    expect(JSON.parse(identify[0]!.body)).toEqual({ token: "signed.token" });
  });

  it("identify resolves to whether it was accepted and never rejects", async () => {
    const ok = page();
    await expect(ok.northstar.identify("t")).resolves.toBe(true);
    const offline = page({ fetchThrows: true });
    await expect(offline.northstar.identify("t")).resolves.toBe(false);
  });

  it("batches hold at most 20 events; every event is sent exactly once", async () => {
    const p = page({ body: PRODUCT_BODY });
    for (let i = 0; i < 45; i++) p.northstar.track("scroll_depth", { i });
    p.tick();
    const batches = await p.batches();
    expect(BEACON_MAX_BATCH).toBe(20);
    expect(batches.length).toBeGreaterThanOrEqual(3);
    for (const b of batches) expect(b.events.length).toBeLessThanOrEqual(20);
    const events = batches.flatMap((b) => b.events);
    expect(events).toHaveLength(47); // page view, product view, 45 tracked
    expect(new Set(events.map((e) => e.id)).size).toBe(47);
    expect(events.filter((e) => e.type === "scroll_depth").map((e) => e.props.i)).toEqual(
      Array.from({ length: 45 }, (_, i) => i),
    );
  });

  it("flushes what is queued when the page is hidden or left, before the timer", async () => {
    const p = page({ body: PRODUCT_BODY });
    p.hide();
    expect((await p.events()).map((e) => e.type)).toEqual(["page_view", "product_view"]);
    p.northstar.track("video_play");
    p.pagehide();
    expect((await p.events()).map((e) => e.type)).toEqual(["page_view", "product_view", "video_play"]);
    p.tick(); // the cancelled timer sends nothing more
    expect(await p.events()).toHaveLength(3);
  });

  it("included twice (the site's own tag and the proxy's), a page view is still counted once", async () => {
    const p = page({ body: PRODUCT_BODY });
    p.load();
    p.tick();
    expect((await p.events()).filter((e) => e.type === "page_view")).toHaveLength(1);
  });

  it("falls back to the prefix it was built with when its tag has no data-prefix", async () => {
    const p = page({ script: null });
    p.tick();
    expect(p.sent.map((s) => s.url)).toEqual(["/_ns/v1/events"]);
  });

  it("never throws into the page and never logs, even when the browser fails it", () => {
    const p = page({ body: PRODUCT_BODY, sendBeacon: "refuses", fetchThrows: true });
    expect(() => {
      p.northstar.track("x", { n: 1 });
      p.tick();
      p.click(new FakeElement({ nsEvent: "add_to_cart", nsValue: "9" }));
      p.click({ nodeType: 3, parentElement: null } as unknown as FakeElement);
      p.hide();
    }).not.toThrow();
    // A page with a broken document still loads its own scripts.
    const broken = { window: {} as Record<string, unknown> };
    broken.window.window = broken.window;
    expect(() => new Script(beaconScript({ prefix: "/_ns" })).runInNewContext(broken.window)).not.toThrow();
    expect(p.consoleCalls).toEqual([]);
  });

  it("is small: under 4 KB as served, a version for its URL", () => {
    const source = beaconScript({ prefix: "/_ns" });
    expect(new TextEncoder().encode(source).length).toBeLessThan(4 * 1024);
    expect(BEACON_VERSION).toMatch(/^[0-9a-f]{8}$/);
    expect(source).not.toMatch(/console\./);
  });
});
