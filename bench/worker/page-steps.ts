/**
 * The worker bench/steps.bench.ts runs: Northstar's own modules, built as `wrangler deploy` builds
 * them, in one workerd isolate with its objects, the origin a service binding beside it. `GET
 * /?step=<name>&n=<count>` runs one step `count` times in a row and answers when every write it left
 * (ctx.waitUntil) has settled, so the runner reads the CPU the step costs from the process. Whole
 * pages (`page-*`) go through the worker's own `fetch` and are read to their last byte; the other
 * steps are single parts of a page's path, called as the page path calls them.
 */
import { decide } from "../../src/core/decide.ts";
import { READS_NOTHING_MORE } from "../../src/core/page-state.ts";
import { isBot, webContext } from "../../src/edge/context.ts";
import { startPersonalization } from "../../src/edge/personalize.ts";
import { buildDeferredRewriter } from "../../src/edge/rewrite.ts";
import { originRequest, privateToVisitor, relayHeaders, rewrittenHeaders } from "../../src/http/proxy.ts";
import worker from "../../src/index.ts";
import { readConfig } from "../../src/platform/config.ts";
import { deadlineIn, withDeadline } from "../../src/platform/deadline.ts";
import type { Env } from "../../src/platform/env.ts";
import { sendExportRetrying } from "../../src/state/export-producer.ts";
import { eventRecord, shownRecords } from "../../src/state/export-record.ts";
import { activeRules } from "../../src/state/rules-loader.ts";
import { issueVisitorId, readVisitorCookie, visitorCookieHeader } from "../../src/state/visitor-id.ts";
import { PAGE_VIEW_ID_PREFIX, visitorObject } from "../../src/state/visitor-object.ts";

export { ExperimentDO, VisitorDO } from "../../src/index.ts";

const BROWSER_UA =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0 Safari/537.36";
const CRAWLER_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const SITE = "http://shop.test/";
const BEACON_TAG =
  '<script src="/_ns/ns.bench.js" data-prefix="/_ns" data-auto-pageview="false" async></script>';
/** What a browser sends with a page, as the proxy receives it. */
const BROWSER_HEADERS: Record<string, string> = {
  "user-agent": BROWSER_UA,
  accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
  "accept-language": "en-US,en;q=0.9",
  "accept-encoding": "gzip, deflate, br",
  "sec-fetch-dest": "document",
  "sec-fetch-mode": "navigate",
  "upgrade-insecure-requests": "1",
};

interface StepEnv extends Env {
  readonly ORIGIN_SERVICE: Fetcher;
}

/** The visitors whose cookies the returning pages carry (set up by the `setup` step). */
const cookies: string[] = [];
const sink = {
  EXPORT: {
    // Each body encoded as the queue's json content type encodes it in the sender's isolate.
    sendBatch: async (messages: Iterable<MessageSendRequest>) => {
      for (const m of messages) JSON.stringify(m.body);
    },
    send: async (body: unknown) => {
      JSON.stringify(body);
    },
  } as unknown as Queue,
};
/**
 * The env the worker's pages get: the bench binds no queue, so EXPORT is a sink that encodes and
 * keeps nothing (as bench/counting.ts's). One view per env object: the worker parses its
 * configuration once per env, and workerd hands it the same one on every request.
 */
const views = new WeakMap<object, StepEnv>();
function withSink(env: StepEnv): StepEnv {
  let view = views.get(env);
  if (!view) {
    view = { ...env, ...sink };
    views.set(env, view);
  }
  return view;
}

/** A page's request, as the worker's fetch receives one (no `cf` here: workerd gives none locally). */
function page(headers: Record<string, string>): Request<unknown, IncomingRequestCfProperties> {
  return new Request(SITE, { headers }) as Request<unknown, IncomingRequestCfProperties>;
}

async function read(response: Response): Promise<void> {
  await response.arrayBuffer();
}

/** The one-selector rewriter's fragment, and its handler as the rewriter bench's floor has it. */
const HERO = "<h1>Hello runner</h1>";
const HERO_NOW: HTMLRewriterElementContentHandlers = {
  element(e) {
    e.setInnerContent(HERO, { html: true });
  },
};

function heroRewriter(hero: HTMLRewriterElementContentHandlers): HTMLRewriter {
  return new HTMLRewriter().on("#hero", hero);
}

/** The origin's page through `rewriter`, read to its last byte. */
async function rewritten(env: StepEnv, rewriter: HTMLRewriter): Promise<void> {
  await read(rewriter.transform(await env.ORIGIN_SERVICE.fetch(SITE)));
}

/** The one-selector rewriter with `body` called on the page's `<body>` (the beacon tag's two ways in). */
function withBodyHandler(env: StepEnv, body: (element: Element) => void): Promise<void> {
  return rewritten(env, heroRewriter(HERO_NOW).on("body", { element: body }));
}

type Step = (env: StepEnv, ctx: ExecutionContext, i: number) => Promise<unknown> | unknown;

const steps: Record<string, Step> = {
  // Whole pages. The floor: the origin's page relayed, then through a one-selector rewriter.
  "page-pass-through": async (env) => read(await env.ORIGIN_SERVICE.fetch(SITE)),
  "page-rewriter": async (env) => rewritten(env, heroRewriter(HERO_NOW)),
  "page-rewriter, hero handler async": async (env) =>
    rewritten(
      env,
      heroRewriter({
        element(e) {
          return Promise.resolve(HERO).then((html) => {
            e.setInnerContent(html, { html: true });
          });
        },
      }),
    ),
  "page-rewriter + beacon appended": async (env) =>
    withBodyHandler(env, (body) => {
      body.append(BEACON_TAG, { html: true });
    }),
  "page-rewriter + beacon, end tag async": async (env) =>
    withBodyHandler(env, (body) => {
      body.onEndTag(async (end) => {
        end.before(await Promise.resolve(BEACON_TAG), { html: true });
      });
    }),
  "page-returning": async (env, ctx, i) =>
    read(
      await worker.fetch(
        page({ ...BROWSER_HEADERS, cookie: cookies[i % cookies.length]! }),
        withSink(env),
        ctx,
      ),
    ),
  "page-new": async (env, ctx) => read(await worker.fetch(page(BROWSER_HEADERS), withSink(env), ctx)),
  "page-crawler": async (env, ctx) =>
    read(await worker.fetch(page({ ...BROWSER_HEADERS, "user-agent": CRAWLER_UA }), withSink(env), ctx)),

  // A returning visitor's personalization whole (cookie, object call, decision, the writes it
  // leaves), without the origin, the proxy's headers or the rewriting.
  "personalization (returning)": async (env, ctx, i) => {
    const request = page({ ...BROWSER_HEADERS, cookie: cookies[i % cookies.length]! });
    const start = await startPersonalization(
      request,
      new URL(request.url),
      withSink(env),
      ctx,
      readConfig(env).config,
    );
    const decided = await start.result;
    return decided.record?.();
  },

  // Parts of a returning visitor's page, one at a time.
  "decision (hero rules)": async (env, _ctx, i) => {
    const rules = await activeRules(env);
    const request = page(BROWSER_HEADERS);
    return decide(rules!.compiled, {
      visitorId: cookies[i % cookies.length]!.split("=")[1]!.split(".")[0]!,
      now: Date.now(),
      traits: {},
      state: null,
      context: webContext(request, new URL(request.url)),
      consent: {},
      placements: rules!.compiled.pageForPath("/").placements,
      segments: false,
    });
  },
  "origin-request": () => {
    const request = page({ ...BROWSER_HEADERS, cookie: cookies[0]! });
    return originRequest(request, new URL(request.url), { origin: new URL("https://origin.test") });
  },
  "response-headers": () => {
    const response = new Response(null, {
      headers: {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "public, max-age=60",
        etag: '"v1"',
      },
    });
    const headers = relayHeaders(response, "http://shop.test", { origin: new URL("https://origin.test") });
    privateToVisitor(headers);
    return rewrittenHeaders(headers);
  },
  "request-context": () => {
    const request = page(BROWSER_HEADERS);
    return [webContext(request, new URL(request.url)), isBot(request.headers.get("user-agent"))];
  },
  "cookie-verify (cached)": (env, _ctx, i) =>
    readVisitorCookie(page({ cookie: cookies[i % cookies.length]! }), readConfig(env).config),
  "cookie-sign (new visitor)": (env) => visitorCookieHeader(issueVisitorId(), readConfig(env).config),
  "object-call (snapshot + page view)": async (env, _ctx, i) => {
    const visitorId = cookies[i % cookies.length]!.split("=")[1]!.split(".")[0]!;
    const now = Date.now();
    return visitorObject(env, visitorId).snapshot({
      now,
      visitorId,
      // The hero page's placements read nothing of the visitor's state but their consent.
      eventsSince: now,
      reads: READS_NOTHING_MORE,
      consentMode: readConfig(env).config.CONSENT_MODE,
      pageView: {
        id: `${PAGE_VIEW_ID_PREFIX}${crypto.randomUUID()}`,
        type: "page_view",
        ts: now,
        channel: "web",
        props: { url: SITE, path: "/" },
      },
    });
  },
  "export-lines (view + exposure)": () => {
    const now = Date.now();
    const view = eventRecord("v", {
      id: `${PAGE_VIEW_ID_PREFIX}${crypto.randomUUID()}`,
      type: "page_view",
      ts: now,
      channel: "web",
      props: { url: SITE, path: "/" },
    });
    const shown = shownRecords(
      "v",
      now,
      [
        {
          placement: "home-hero",
          experience: "hero-ab",
          experiment: "hero-test",
          variant: "bold",
        },
      ],
      "bench-hero",
    );
    return sendExportRetrying(sink, [view, ...shown]);
  },
  "deadline (a store call's timer)": () => {
    const deadline = deadlineIn(50);
    return withDeadline(Promise.resolve(1), deadline).finally(() => deadline.cancel());
  },
  "rewriter build (deferred hero + beacon)": () =>
    buildDeferredRewriter(
      [{ selector: "#hero", action: "replace_content", attribute: null }],
      Promise.resolve([]),
      BEACON_TAG,
    ),
};

export default {
  async fetch(request: Request, env: StepEnv, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    const name = url.searchParams.get("step") ?? "";
    if (name === "setup") {
      // Returning visitors: the cookie each one's first page set; then one page each, so each has
      // an object with a page view in it, as a visitor who came back has.
      const count = Number(url.searchParams.get("n") ?? 20);
      while (cookies.length < count) {
        const res = await worker.fetch(page(BROWSER_HEADERS), withSink(env), ctx);
        await read(res);
        const set = res.headers.getSetCookie().find((c) => c.startsWith("ns_vid="));
        if (set) cookies.push(set.split(";")[0]!);
      }
      for (const cookie of cookies)
        await read(await worker.fetch(page({ ...BROWSER_HEADERS, cookie }), withSink(env), ctx));
      return Response.json({ steps: Object.keys(steps), visitors: cookies.length });
    }
    const step = steps[name];
    if (!step) return new Response(`no step ${name}`, { status: 404 });
    const n = Number(url.searchParams.get("n") ?? 1);
    // The writes a page leaves for later are part of its cost: waited for before answering.
    const pending: Promise<unknown>[] = [];
    const counted = {
      waitUntil: (promise: Promise<unknown>) => pending.push(promise),
      passThroughOnException: () => {},
      props: {},
    } as unknown as ExecutionContext;
    for (let i = 0; i < n; i++) await step(env, counted, i);
    await Promise.allSettled(pending);
    return new Response("ok");
  },
};
