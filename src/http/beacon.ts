/**
 * The beacon the proxy injects before `</body>` and serves at `<prefix>/ns.<version>.js`. Plain
 * ES2017, no dependencies, a couple of KB: it reports page views, clicks on elements marked with
 * `data-ns-event`, and calls to `northstar.track()`, batched through `navigator.sendBeacon`
 * (text/plain, so no CORS preflight). The visitor id is not in the body: it rides in the
 * HttpOnly cookie. It never throws into the page.
 */
export const BEACON_VERSION = "1";

const SOURCE = `(function () {
  try {
    var script = document.currentScript;
    var prefix = (script && script.getAttribute("data-prefix")) || "/_ns";
    var autoPageView = !script || script.getAttribute("data-auto-pageview") !== "false";
    var queue = [];
    var timer = null;
    var MAX_BATCH = 20;
    var uid = function () {
      try { return crypto.randomUUID(); } catch (e) {
        return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
      }
    };
    var send = function (body) {
      try {
        if (navigator.sendBeacon && navigator.sendBeacon(prefix + "/v1/events", new Blob([body], { type: "text/plain" }))) return;
      } catch (e) {}
      try {
        fetch(prefix + "/v1/events", { method: "POST", body: body, keepalive: true, credentials: "same-origin", headers: { "content-type": "text/plain" } });
      } catch (e) {}
    };
    var flush = function () {
      if (timer) { clearTimeout(timer); timer = null; }
      while (queue.length) send(JSON.stringify({ sentAt: Date.now(), events: queue.splice(0, MAX_BATCH) }));
    };
    var tagsOf = function (el) {
      var raw = el && el.getAttribute("data-ns-tags");
      return raw ? raw.split(",").map(function (t) { return t.trim(); }).filter(Boolean) : undefined;
    };
    var track = function (type, props) {
      try {
        queue.push({ id: uid(), type: String(type), ts: Date.now(), channel: "web", props: props || {} });
        if (queue.length >= MAX_BATCH) flush();
        else if (!timer) timer = setTimeout(flush, 1000);
      } catch (e) {}
    };
    var identify = function (token) {
      try {
        flush();
        return fetch(prefix + "/v1/identify", { method: "POST", credentials: "same-origin", headers: { "content-type": "application/json" }, body: JSON.stringify({ token: token }) });
      } catch (e) { return Promise.resolve(); }
    };
    var pending = (window.northstar && window.northstar.q) || [];
    window.northstar = { track: track, identify: identify, flush: flush, q: [] };
    for (var i = 0; i < pending.length; i++) {
      var call = pending[i];
      if (call && call[0] === "track") track(call[1], call[2]);
      else if (call && call[0] === "identify") identify(call[1]);
    }
    var body = document.body;
    if (autoPageView) {
      track("page_view", { url: location.href, path: location.pathname, title: document.title, referrer: document.referrer || undefined,
        tags: tagsOf(body), category: (body && body.getAttribute("data-ns-category")) || undefined });
    }
    var category = body && body.getAttribute("data-ns-category");
    if (category && body.getAttribute("data-ns-product")) {
      track("product_view", { path: location.pathname, productId: body.getAttribute("data-ns-product"), category: category, tags: tagsOf(body) });
    }
    document.addEventListener("click", function (ev) {
      try {
        var el = ev.target && ev.target.closest && ev.target.closest("[data-ns-event]");
        if (!el) return;
        var props = { path: location.pathname };
        var product = el.getAttribute("data-ns-product"); if (product) props.productId = product;
        var cat = el.getAttribute("data-ns-category"); if (cat) props.category = cat;
        var tags = tagsOf(el); if (tags) props.tags = tags;
        var value = el.getAttribute("data-ns-value"); if (value && !isNaN(Number(value))) props.value = Number(value);
        track(el.getAttribute("data-ns-event"), props);
        flush();
      } catch (e) {}
    }, true);
    addEventListener("pagehide", flush);
    document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") flush(); });
  } catch (e) {}
})();
`;

export function beaconScript(_options: { prefix: string }): string {
  return SOURCE;
}
