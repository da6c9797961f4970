import type { DeviceClass, RequestContext } from "../core/model.ts";

/**
 * The engine's RequestContext, built here for both ways in: a proxied page (`webContext`: path and
 * query, referrer, device class from the user agent) and a decide call (`apiContext`: what the
 * caller says of its own channel). Both read geography and timezone from Cloudflare's `request.cf`
 * the same way (`geoOf`).
 */

const DEFAULT_BOTS =
  /bot|crawl|spider|slurp|bingpreview|facebookexternalhit|embedly|quora link preview|outbrain|pinterest|vkshare|w3c_validator|lighthouse|headlesschrome|python-requests|curl\/|wget|httpclient|go-http-client|okhttp|axios|node-fetch/i;

/** Compiled per configured list: one per deployment, a few across tests; bounded all the same. */
const botPatterns = new Map<string, RegExp>();
const MAX_BOT_PATTERNS = 8;

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
    if (botPatterns.size >= MAX_BOT_PATTERNS) botPatterns.clear();
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

const NO_CF: Readonly<Record<string, unknown>> = {};

/** Where the request comes from, as Cloudflare's edge saw it; a caller's own word wins where given. */
function geoOf(
  request: Request,
  said: { readonly country?: string | undefined; readonly timezone?: string | undefined } = NO_CF,
): RequestContext["geo"] {
  const cf = (request as { cf?: Record<string, unknown> }).cf ?? NO_CF;
  return {
    country: said.country ?? str(cf.country),
    region: str(cf.region),
    city: str(cf.city),
    timezone: said.timezone ?? str(cf.timezone),
  };
}

/** A language tag from Accept-Language: its first entry, without its weight. */
function localeOf(acceptLanguage: string | null): string | null {
  return acceptLanguage ? (acceptLanguage.split(",")[0]?.split(";")[0]?.trim() ?? null) : null;
}

export function webContext(request: Request, url: URL = new URL(request.url)): RequestContext {
  const userAgent = request.headers.get("user-agent");
  const query: Record<string, string> = Object.create(null);
  for (const [key, value] of url.searchParams) if (!(key in query)) query[key] = value;
  return {
    channel: "web",
    url: url.toString(),
    path: url.pathname,
    query,
    referrer: request.headers.get("referer"),
    geo: geoOf(request),
    device: deviceClass(userAgent),
    locale: localeOf(request.headers.get("accept-language")),
    userAgent,
    custom: Object.create(null),
  };
}

/** What a decide call says of the context it asks in (app, email, kiosk): all of it optional. */
export interface StatedContext {
  readonly url?: string | undefined;
  readonly path?: string | undefined;
  readonly query?: Record<string, string> | undefined;
  readonly referrer?: string | undefined;
  readonly country?: string | undefined;
  readonly timezone?: string | undefined;
  readonly device?: DeviceClass | undefined;
  readonly locale?: string | undefined;
  readonly custom?: Record<string, unknown> | undefined;
}

/**
 * A decide call's context: what the caller stated, and where it did not, the request's geography.
 * The device and locale are the caller's alone: the request comes from its server, not the person.
 */
export function apiContext(channel: string, stated: StatedContext, request: Request): RequestContext {
  const url = stated.url ? new URL(stated.url) : null;
  return {
    channel,
    url: stated.url ?? null,
    path: stated.path ?? url?.pathname ?? "/",
    query: stated.query ?? (url ? Object.fromEntries(url.searchParams) : {}),
    referrer: stated.referrer ?? null,
    geo: geoOf(request, stated),
    device: stated.device ?? "unknown",
    locale: stated.locale ?? null,
    userAgent: null,
    custom: stated.custom ?? {},
  };
}

/** Paths that are assets by their extension skip the decision path entirely. */
export function looksLikeAsset(pathname: string): boolean {
  const dot = pathname.lastIndexOf(".");
  if (dot < pathname.lastIndexOf("/")) return false;
  const ext = pathname.slice(dot + 1).toLowerCase();
  return dot > 0 && ext !== "html" && ext !== "htm" && ext !== "php" && ext !== "asp" && ext !== "aspx";
}
