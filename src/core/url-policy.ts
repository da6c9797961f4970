/**
 * Which URLs a rule may put in front of a visitor: as an attribute value (href, src, …) and as a
 * redirect's Location. Pure, so the validator (literal values, at publish and load time) and the
 * runtime (values rendered from templates, per request) apply the same policy.
 *
 * Attributes: an `on*` handler or `srcdoc` is markup or script, never a value; a URL attribute
 * keeps only http, https, mailto, tel or a relative URL (no `javascript:`, `vbscript:`, `data:`).
 * Redirects: a path on this site, an absolute http(s) URL on the request's own host, or one on a
 * host the rules list in `settings.redirectHosts`; everything ambiguous counts as another host.
 */

/** Attributes whose value a browser follows or loads as a URL (names compared in lower case). */
const URL_ATTRIBUTES: ReadonlySet<string> = new Set([
  "action",
  "archive",
  "background",
  "cite",
  "classid",
  "codebase",
  "data",
  "dynsrc",
  "formaction",
  "href",
  "icon",
  "imagesrcset",
  "longdesc",
  "lowsrc",
  "manifest",
  "ping",
  "poster",
  "profile",
  "src",
  "srcset",
  "usemap",
  "xlink:href",
  "xml:base",
]);

/** The schemes a rendered URL attribute may use; anything else is dropped. */
const SAFE_SCHEMES: ReadonlySet<string> = new Set(["http", "https", "mailto", "tel"]);

/** Why an attribute may not be set to a value (a closed set, so callers can log and test it). */
export type AttributeRefusal = "event_handler" | "markup" | "url_scheme";

export function isUrlAttribute(name: string): boolean {
  const lower = name.toLowerCase();
  return URL_ATTRIBUTES.has(lower) || lower.endsWith(":href");
}

/** `onload`, `OnClick`, … : their value is script, whatever it says. */
export function isEventHandlerAttribute(name: string): boolean {
  return /^on/i.test(name);
}

/**
 * Character references a browser decodes in an attribute before it reads the URL
 * (`&#106;avascript:` is `javascript:`). One pass, as the HTML parser does.
 */
function decodeReferences(value: string): string {
  if (!value.includes("&")) return value;
  const named: Record<string, string> = { colon: ":", tab: "\t", newline: "\n", amp: "&", sol: "/" };
  return value.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);?/gi, (ref, body: string) => {
    if (body[0] === "#") {
      const code =
        body[1] === "x" || body[1] === "X" ? Number.parseInt(body.slice(2), 16) : Number(body.slice(1));
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : ref;
    }
    return named[body.toLowerCase()] ?? ref;
  });
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the URL parser skips these before a scheme, so must we
const LEADING_CONTROLS = /^[\u0000-\u0020]+/;

/**
 * The scheme a browser reads in `value`, in lower case, or null for a relative URL. It strips what
 * the URL parser strips (leading and trailing controls and spaces, tabs and newlines anywhere), so
 * ` java\tscript:` is `javascript`.
 */
export function urlScheme(value: string): string | null {
  const url = decodeReferences(value)
    .replace(/[\t\n\r]/g, "")
    .replace(LEADING_CONTROLS, "");
  const end = url.search(/[:/?#]/);
  return end >= 0 && url[end] === ":" ? url.slice(0, end).toLowerCase() : null;
}

/** A URL safe to put in a URL attribute: relative, or http, https, mailto, tel. */
export function isSafeUrl(value: string): boolean {
  const scheme = urlScheme(value);
  return scheme === null || SAFE_SCHEMES.has(scheme);
}

/** The URLs of a `srcset` ("a.png 1x, b.png 2x"): each candidate's first word. */
function srcsetUrls(value: string): string[] {
  return value
    .split(",")
    .map((candidate) => candidate.trim().split(/\s+/)[0] ?? "")
    .filter((url) => url !== "");
}

/**
 * Why `name` may not be set to `value`, or null when it may.
 *
 * @example
 * attributeRefusal("href", "javascript:alert(1)") // "url_scheme"
 * attributeRefusal("onload", "x()")               // "event_handler"
 * attributeRefusal("href", "/sale")               // null
 */
export function attributeRefusal(name: string, value: string): AttributeRefusal | null {
  if (isEventHandlerAttribute(name)) return "event_handler";
  const lower = name.toLowerCase();
  // An iframe's srcdoc is a whole document: markup belongs in html content, where it is reviewed as such.
  if (lower === "srcdoc") return "markup";
  if (!isUrlAttribute(lower)) return null;
  // srcset lists URLs with descriptors; ping lists URLs separated by spaces.
  const urls =
    lower === "srcset" || lower === "imagesrcset"
      ? srcsetUrls(value)
      : lower === "ping"
        ? value.split(/\s+/).filter(Boolean)
        : [value];
  return urls.every(isSafeUrl) ? null : "url_scheme";
}

/** `isSafeUrlAttribute("href", "https://x")`: the value may be set on that attribute. */
export function isSafeUrlAttribute(name: string, value: string): boolean {
  return attributeRefusal(name, value) === null;
}

/** A host as `settings.redirectHosts` lists it: a lowercase name, with a port when not the default. */
export const REDIRECT_HOST_PATTERN =
  /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/;

/** Whitespace, backslashes and controls: browsers repair them into other hosts, or a forged header. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const NEVER_IN_REDIRECT = /[\s\\\u0000-\u001f\u007f]/;

/**
 * Where a redirect may send the visitor: the target to put in Location, or null to refuse it.
 * `siteHost` is the request's public host (`shop.example`, `localhost:8787`), or null when unknown
 * (then only paths and listed hosts pass). A backslash, whitespace or a control character anywhere
 * is refused: browsers read `/\evil.example` and `/ /evil.example` as other hosts, and a CR/LF would
 * forge a header. So is a scheme without `//` (`https:evil.example`), any scheme but http(s), and
 * credentials in the URL (`https://site@evil.example`).
 *
 * @example
 * redirectTarget("/landing", "shop.example", [])               // "/landing"
 * redirectTarget("//evil.example/x", "shop.example", [])       // null
 * redirectTarget("https://help.example/a", "shop.example", ["help.example"]) // "https://help.example/a"
 */
export function redirectTarget(
  raw: string,
  siteHost: string | null,
  allowedHosts: readonly string[],
): string | null {
  if (raw === "" || NEVER_IN_REDIRECT.test(raw)) return null;
  const end = raw.search(/[:/?#]/);
  const protocolRelative = raw.startsWith("//");
  // A path, a query or a fragment on this page's site: the browser cannot leave the host.
  if (!protocolRelative && (end === -1 || raw[end] !== ":")) return raw;
  if (!protocolRelative) {
    const scheme = raw.slice(0, end).toLowerCase();
    if ((scheme !== "http" && scheme !== "https") || !raw.startsWith("//", end + 1)) return null;
  }
  let url: URL;
  try {
    url = new URL(protocolRelative ? `https:${raw}` : raw);
  } catch {
    return null;
  }
  if (url.username !== "" || url.password !== "") return null;
  const host = url.host;
  const allowed = host === siteHost?.toLowerCase() || allowedHosts.some((h) => h.toLowerCase() === host);
  if (!allowed) return null;
  return protocolRelative ? raw : url.href;
}
