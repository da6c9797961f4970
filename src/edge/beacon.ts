import { murmur3 } from "../core/bucketing.ts";

/**
 * The beacon the proxy injects before `</body>` and serves at `<prefix>/ns.<version>.js`. Plain
 * ES2017, no dependencies, no build step, under 4 KB: the string below is the script. It reports
 * page views (and product views on pages whose `<body>` names a product), clicks on elements marked
 * with `data-ns-event`, and calls to `northstar.track()`, batched as text/plain (a CORS-safelisted
 * type: no preflight). While the page is shown a batch goes by keepalive `fetch`, so that a 503
 * (a store did not take it) or a 429 (a write limit) is retried: after `Retry-After`, else 1, 2
 * then 4 s, three times at most, with the same event ids (the visitor's object stores an id once)
 * and a fresh `sentAt`. When the page is hidden (it may be going away), or fetch fails, a batch goes
 * by `navigator.sendBeacon`, whose answer nobody can read. The visitor id is not in the body: it
 * rides in the HttpOnly cookie the worker sets. It never throws into the page and never logs.
 *
 * Page markup it reads:
 * - `<script src="…/ns.<version>.js" data-prefix="/_ns" data-auto-pageview="false">` (its own config;
 *   on a new visitor's first page, `data-first` holds what the page assigned and showed, sent back as
 *   is, as `firstPage`, with the first batch: src/edge/first-page.ts);
 * - `<body data-ns-tags="running,trail" data-ns-category="running" data-ns-product="trail-runner-2">`;
 * - `<button data-ns-event="add_to_cart" data-ns-product="…" data-ns-category="…" data-ns-tags="a,b"
 *   data-ns-value="129">`: any `data-ns-*` becomes a prop (`product` is sent as `productId`, `tags`
 *   as a list, `value` as a number).
 *
 * The site can call it before it loads: `window.northstar = window.northstar || { q: [] };
 * northstar.q.push(["track", "signup", { plan: "pro" }]); northstar.q.push(["identify", token]);`
 *
 * Its URL's version is a hash of its source, so a changed script is a new URL and the year-long
 * `immutable` cache can never serve a stale one.
 *
 * Wire format (POST `<prefix>/v1/events`, at most 20 events a request):
 * `{ "sentAt": ms, "events": [{ "id", "type", "ts": ms, "channel": "web", "props": {…} }], "firstPage"?: "…" }`.
 */

/** Events per request: the batch flushes when it is full, after 1 s, or when the page is hidden. */
export const BEACON_MAX_BATCH = 20;

const SOURCE = `(function () {
  "use strict";
  try {
    var w = window, d = document, nav = navigator, old = w.northstar;
    if (old && old.loaded) return; // included twice: the first copy does the work
    var script = d.currentScript, cfg = (script && script.dataset) || {};
    var prefix = cfg.prefix || __PREFIX__;
    var queue = [], timer = 0, MAX = __MAX__, noop = function () {};
    var uid = function () {
      try { return crypto.randomUUID(); } catch (e) {}
      return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
    };
    var post = function (path, body, type) {
      return fetch(prefix + path, { method: "POST", body: body, keepalive: true, credentials: "same-origin", headers: { "content-type": type } });
    };
    var beacon = function (body) {
      try { return nav.sendBeacon(prefix + "/v1/events", new Blob([body], { type: "text/plain" })); } catch (e) {}
    };
    var first = cfg.first;
    var send = function (events, tries, claim) {
      var body = JSON.stringify({ sentAt: Date.now(), events: events, firstPage: claim });
      if (d.visibilityState === "hidden" && beacon(body)) return;
      try {
        post("/v1/events", body, "text/plain").then(function (r) {
          if ((r.status === 503 || r.status === 429) && tries < 3)
            setTimeout(function () { send(events, tries + 1, claim); }, Math.min(6e4, Math.max(1e3 << tries, 1e3 * r.headers.get("retry-after") || 0)));
        }, function () { beacon(body); });
      } catch (e) { beacon(body); }
    };
    var flush = function () {
      try {
        clearTimeout(timer); timer = 0;
        while (queue.length) { send(queue.splice(0, MAX), 0, first); first = void 0; }
      } catch (e) {}
    };
    var track = function (type, props) {
      try {
        queue.push({ id: uid(), type: String(type), ts: Date.now(), channel: "web", props: props && typeof props === "object" ? props : {} });
        if (queue.length >= MAX) flush(); else if (!timer) timer = setTimeout(flush, 1000);
      } catch (e) {}
    };
    var identify = function (token) {
      flush();
      try { return post("/v1/identify", JSON.stringify({ token: String(token) }), "application/json").then(function (r) { return r.ok; }, function () { return false; }); }
      catch (e) { return Promise.resolve(false); }
    };
    // data-ns-* of an element as props: data-ns-product="x" -> productId, tags -> list, value -> number.
    var propsOf = function (el) {
      var ds = (el && el.dataset) || {}, p = {};
      for (var k in ds) {
        if (k.length < 3 || k.slice(0, 2) !== "ns" || k === "nsEvent") continue;
        var name = k.charAt(2).toLowerCase() + k.slice(3), v = ds[k];
        if (name === "product") name = "productId";
        else if (name === "tags") v = v.split(",").map(function (t) { return t.trim(); }).filter(Boolean);
        else if (name === "value") { v = v.trim() === "" ? NaN : Number(v); if (!isFinite(v)) continue; }
        p[name] = v;
      }
      return p;
    };
    var run = function (call) {
      try {
        if (call && call[0] === "track") track(call[1], call[2]);
        else if (call && call[0] === "identify") identify(call[1]);
      } catch (e) {}
      return 0;
    };
    var q = [];
    q.push = run; // calls pushed after load run at once
    var pending = (old && old.q) || [];
    w.northstar = { loaded: true, version: __VERSION__, track: track, identify: identify, flush: flush, q: q };
    var start = function () {
      try {
        var b = propsOf(d.body), loc = location;
        if (cfg.autoPageview !== "false") {
          track("page_view", { url: loc.href, path: loc.pathname, title: d.title, referrer: d.referrer || undefined, tags: b.tags, category: b.category });
        }
        if (b.productId) track("product_view", Object.assign({ path: loc.pathname }, b));
        for (var i = 0; i < pending.length; i++) run(pending[i]);
      } catch (e) {}
    };
    if (d.body) start(); else d.addEventListener("DOMContentLoaded", start);
    d.addEventListener("click", function (ev) {
      try {
        var t = ev.target;
        if (t && t.nodeType !== 1) t = t.parentElement;
        var el = t && t.closest && t.closest("[data-ns-event]");
        if (!el) return;
        track(el.dataset.nsEvent, Object.assign({ path: location.pathname }, propsOf(el)));
        flush(); // the click may leave the page
      } catch (e) {}
    }, true);
    w.addEventListener("pagehide", flush);
    d.addEventListener("visibilitychange", function () { if (d.visibilityState === "hidden") flush(); });
  } catch (e) {}
})();
`;

/** The first 8 hex digits of the source's hash: the version in the beacon's URL. */
export const BEACON_VERSION = murmur3(new TextEncoder().encode(`${SOURCE}\n${BEACON_MAX_BATCH}`))
  .toString(16)
  .padStart(8, "0");

/** A JS literal for a string, safe to splice into the source (JSON, with the two JSON-only line breaks escaped). */
function literal(s: string): string {
  return JSON.stringify(s)
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/**
 * The beacon's source. `prefix` (e.g. "/_ns") is where it sends events when its script tag carries
 * no `data-prefix` (a site that copied the tag without it still reports to the right place).
 */
export function beaconScript(options: { prefix: string }): string {
  const values: Record<string, string> = {
    __PREFIX__: literal(options.prefix),
    __MAX__: String(BEACON_MAX_BATCH),
    __VERSION__: literal(BEACON_VERSION),
  };
  // Indentation is for reading this file; the browser gets the lines without it.
  return SOURCE.replace(/^[ ]+/gm, "").replace(/__[A-Z]+__/g, (name) => values[name] ?? name);
}
