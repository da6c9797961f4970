import type { DeviceClass, RequestContext } from "../core/model.ts";

/**
 * Builds the engine's RequestContext from an incoming web request: path and query, referrer,
 * geography and timezone from Cloudflare's `request.cf`, device class from the user agent.
 */

const DEFAULT_BOTS =
  /bot|crawl|spider|slurp|bingpreview|facebookexternalhit|embedly|quora link preview|outbrain|pinterest|vkshare|w3c_validator|lighthouse|headlesschrome|python-requests|curl\/|wget|httpclient|go-http-client|okhttp|axios|node-fetch/i;

const botPatterns = new Map<string, RegExp>();

/** Crawler user agents: a configured list (`|`-separated substrings) or the default pattern. */
export function isBot(userAgent: string | null, configured?: string): boolean {
  if (!userAgent) return true;
  if (!configured) return DEFAULT_BOTS.test(userAgent);
  let pattern = botPatterns.get(configured);
  if (!pattern) {
    const escaped = configured
      .split("|")
      .map((s) => s.trim())
      .filter(Boolean)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    pattern = escaped.length ? new RegExp(escaped.join("|"), "i") : DEFAULT_BOTS;
    botPatterns.set(configured, pattern);
  }
  return pattern.test(userAgent);
}

export function deviceClass(userAgent: string | null): DeviceClass {
  if (!userAgent) return "unknown";
  if (DEFAULT_BOTS.test(userAgent)) return "bot";
  if (/ipad|tablet|(android(?!.*mobile))|kindle|silk/i.test(userAgent)) return "tablet";
  if (/mobi|iphone|ipod|android|blackberry|opera mini|iemobile/i.test(userAgent)) return "mobile";
  return "desktop";
}

function str(value: unknown): string | null {
  return typeof value === "string" && value.length > 0 ? value : null;
}

export function webContext(request: Request, url: URL = new URL(request.url)): RequestContext {
  const cf = (request as { cf?: Record<string, unknown> }).cf ?? {};
  const userAgent = request.headers.get("user-agent");
  const query: Record<string, string> = Object.create(null);
  for (const [key, value] of url.searchParams) if (!(key in query)) query[key] = value;
  const language = request.headers.get("accept-language");
  return {
    channel: "web",
    url: url.toString(),
    path: url.pathname,
    query,
    referrer: request.headers.get("referer"),
    geo: {
      country: str(cf.country),
      region: str(cf.region),
      city: str(cf.city),
      timezone: str(cf.timezone),
    },
    device: deviceClass(userAgent),
    locale: language ? (language.split(",")[0]?.split(";")[0]?.trim() ?? null) : null,
    userAgent,
    custom: Object.create(null),
  };
}

/** Paths that are assets by their extension skip the decision path entirely. */
export function looksLikeAsset(pathname: string): boolean {
  const dot = pathname.lastIndexOf(".");
  if (dot < pathname.lastIndexOf("/")) return false;
  const ext = pathname.slice(dot + 1).toLowerCase();
  return dot > 0 && ext !== "html" && ext !== "htm" && ext !== "php" && ext !== "asp" && ext !== "aspx";
}
