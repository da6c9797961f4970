import { escapeHtml, escapeJsonString } from "./escape.ts";

/**
 * `{{ traits.firstName | default: "there" }}` templates: parsed once per rules version into literal
 * and lookup parts, rendered per request with no code execution.
 *
 * - A path is dotted identifiers (`traits.firstName`, `context.geo.city`, `intent.top`), read with
 *   own-property checks only; `__proto__`, `constructor` and `prototype` are refused at compile time.
 * - A missing, null, empty-string, non-finite or non-scalar (object, array) value renders the
 *   `default` filter's text, or nothing: never "undefined", "NaN" or "[object Object]".
 * - Filters run left to right: `default: "x"`, `upcase`, `downcase`, `capitalize` (first letter only:
 *   "mcKenzie" → "McKenzie", unlike Liquid), `truncate: N` (at most N characters, "…" included),
 *   `number` / `number: D` (locale-free: "," every three digits, "." decimal point; D decimals, by
 *   default 0 for whole numbers and 2 otherwise), `url_encode` (encodeURIComponent). Filters other than
 *   `default` skip a missing value, so `{{ x | default: "there" | upcase }}` renders "THERE".
 * - The mode escapes the rendered value, default text included (defaults come from rule authors, but a
 *   default is a value, and escaping it means an author never has to think about which is which):
 *   `html` escapes `& < > " '`, `json` escapes as the content of a JSON string (plus `< > &`
 *   U+2028 U+2029 as \u escapes, so it is inline-script safe too), `text` escapes nothing.
 *   Literal text around the placeholders is the rule author's markup and is never escaped.
 */
export type TemplateScope = Readonly<Record<string, unknown>>;
export type Template = (scope: TemplateScope) => string;
export type TemplateMode = "html" | "json" | "text";

type Filter =
  | { readonly kind: "default"; readonly text: string }
  | { readonly kind: "upcase" | "downcase" | "capitalize" | "url_encode" }
  | { readonly kind: "truncate"; readonly length: number }
  | { readonly kind: "number"; readonly decimals: number | null };

interface Lookup {
  readonly path: readonly string[];
  readonly filters: readonly Filter[];
}

type Part = string | Lookup;

type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);
const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const MAX_TEMPLATE = 64 * 1024;
const MAX_DECIMALS = 10;

/** A cursor over one `{{ … }}` expression. Hand-written so a `|` or `}}` inside a quoted default is text. */
class Reader {
  pos: number;
  readonly src: string;
  constructor(src: string, pos: number) {
    this.src = src;
    this.pos = pos;
  }
  skipSpace() {
    while (this.pos < this.src.length && /\s/.test(this.src[this.pos]!)) this.pos++;
  }
  startsWith(s: string) {
    return this.src.startsWith(s, this.pos);
  }
  /** A run of characters matching `re` (one character at a time). */
  take(re: RegExp): string {
    const start = this.pos;
    while (this.pos < this.src.length && re.test(this.src[this.pos]!)) this.pos++;
    return this.src.slice(start, this.pos);
  }
  /** A string in double or single quotes; backslash escapes the next character. */
  quoted(): string | null {
    const quote = this.src[this.pos];
    if (quote !== '"' && quote !== "'") return null;
    let out = "";
    for (let i = this.pos + 1; i < this.src.length; i++) {
      const c = this.src[i]!;
      if (c === "\\" && i + 1 < this.src.length) {
        out += this.src[++i];
      } else if (c === quote) {
        this.pos = i + 1;
        return out;
      } else out += c;
    }
    return null;
  }
}

function parseFilter(r: Reader): Parsed<Filter> {
  r.skipSpace();
  const at = r.pos;
  const name = r.take(/[a-z_]/);
  if (!name) return { ok: false, error: `expected a filter name at ${at}` };
  r.skipSpace();
  let arg: { kind: "string"; value: string } | { kind: "number"; value: number } | null = null;
  if (r.startsWith(":")) {
    r.pos++;
    r.skipSpace();
    const s = r.quoted();
    if (s !== null) arg = { kind: "string", value: s };
    else {
      const digits = r.take(/[0-9]/);
      if (!digits)
        return { ok: false, error: `filter "${name}" at ${at}: expected a quoted string or a number` };
      arg = { kind: "number", value: Number(digits) };
    }
    r.skipSpace();
  }
  switch (name) {
    case "default":
      if (arg?.kind !== "string")
        return { ok: false, error: 'default needs a quoted string: default: "there"' };
      return { ok: true, value: { kind: "default", text: arg.value } };
    case "truncate":
      if (arg?.kind !== "number" || arg.value < 1)
        return { ok: false, error: "truncate needs a positive whole number: truncate: 20" };
      return { ok: true, value: { kind: "truncate", length: arg.value } };
    case "number":
      if (arg && (arg.kind !== "number" || arg.value > MAX_DECIMALS))
        return { ok: false, error: `number takes a count of decimals from 0 to ${MAX_DECIMALS}: number: 2` };
      return { ok: true, value: { kind: "number", decimals: arg ? arg.value : null } };
    case "upcase":
    case "downcase":
    case "capitalize":
    case "url_encode":
      if (arg) return { ok: false, error: `filter "${name}" takes no argument` };
      return { ok: true, value: { kind: name } };
    default:
      return { ok: false, error: `unknown filter "${name}"` };
  }
}

function parseLookup(r: Reader): Parsed<Lookup> {
  r.skipSpace();
  const at = r.pos;
  const pathText = r.take(/[A-Za-z0-9_.-]/);
  const path = pathText.split(".");
  if (!pathText || !path.every((seg) => IDENT.test(seg)))
    return { ok: false, error: `expected a path like traits.firstName at ${at}, got "${pathText}"` };
  const bad = path.find((seg) => FORBIDDEN.has(seg));
  if (bad) return { ok: false, error: `path "${pathText}" is not allowed: "${bad}" is reserved` };
  const filters: Filter[] = [];
  r.skipSpace();
  while (r.startsWith("|")) {
    r.pos++;
    const f = parseFilter(r);
    if (!f.ok) return f;
    filters.push(f.value);
  }
  if (!r.startsWith("}}")) {
    return r.pos >= r.src.length
      ? { ok: false, error: 'unclosed "{{"' }
      : { ok: false, error: `unexpected "${r.src[r.pos]}" at ${r.pos}; expected "|" or "}}"` };
  }
  r.pos += 2;
  return { ok: true, value: { path, filters } };
}

function parse(source: string): Parsed<Part[]> {
  if (source.length > MAX_TEMPLATE) return { ok: false, error: "template longer than 64 KB" };
  const parts: Part[] = [];
  let i = 0;
  while (i < source.length) {
    const open = source.indexOf("{{", i);
    if (open < 0) {
      parts.push(source.slice(i));
      break;
    }
    if (open > i) parts.push(source.slice(i, open));
    const r = new Reader(source, open + 2);
    const lookup = parseLookup(r);
    if (!lookup.ok) return { ok: false, error: `in "{{" at ${open}: ${lookup.error}` };
    parts.push(lookup.value);
    i = r.pos;
  }
  return { ok: true, value: parts };
}

/** Reads a dotted path through own properties only; anything else is `undefined`. */
export function lookup(scope: TemplateScope, path: readonly string[]): unknown {
  let current: unknown = scope;
  for (const seg of path) {
    if (current === null || typeof current !== "object" || !Object.hasOwn(current, seg)) return undefined;
    current = (current as Record<string, unknown>)[seg];
  }
  return current;
}

/** The text of a renderable value, or null for "missing" (which `default` replaces). */
function scalar(value: unknown): string | null {
  if (typeof value === "string") return value.length > 0 ? value : null;
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : null;
  if (typeof value === "boolean") return value ? "true" : "false";
  return null;
}

/** Digits grouped by "," in thousands, "." before decimals; the same in every runtime and locale. */
export function formatNumber(n: number, decimals: number | null): string {
  const d = decimals ?? (Number.isInteger(n) ? 0 : 2);
  const fixed = Math.abs(n).toFixed(d);
  if (fixed.includes("e")) return String(n); // ≥ 1e21: toFixed gives exponent notation
  const [whole, frac] = fixed.split(".") as [string, string | undefined];
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const negative = n < 0 && /[1-9]/.test(fixed);
  return `${negative ? "-" : ""}${grouped}${frac ? `.${frac}` : ""}`;
}

/** Lone surrogates make encodeURIComponent throw; they become U+FFFD, as in UTF-8 encoders. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function applyFilters(value: unknown, filters: readonly Filter[]): string {
  let text = scalar(value);
  for (const f of filters) {
    if (f.kind === "default") {
      if (text === null) text = f.text.length > 0 ? f.text : null;
      continue;
    }
    if (text === null) continue;
    switch (f.kind) {
      case "upcase":
        text = text.toUpperCase();
        break;
      case "downcase":
        text = text.toLowerCase();
        break;
      case "capitalize": {
        const first = text.codePointAt(0)!;
        const width = first > 0xffff ? 2 : 1;
        text = text.slice(0, width).toUpperCase() + text.slice(width);
        break;
      }
      case "truncate": {
        // Counted in code points, so an emoji is never cut in half.
        const chars = Array.from(text);
        if (chars.length > f.length) text = `${chars.slice(0, f.length - 1).join("")}…`;
        break;
      }
      case "number": {
        const n = Number(text);
        if (text.trim() !== "" && Number.isFinite(n)) text = formatNumber(n, f.decimals);
        break;
      }
      case "url_encode":
        text = encodeURIComponent(text.replace(LONE_SURROGATE, "\uFFFD"));
        break;
    }
  }
  return text ?? "";
}

const ESCAPERS: Readonly<Record<TemplateMode, (s: string) => string>> = {
  html: escapeHtml,
  json: escapeJsonString,
  text: (s) => s,
};

/**
 * Parses a template once; the returned function renders it against a scope with no further parsing.
 * Expected failures (bad syntax, unknown filters, reserved paths) are values, never exceptions.
 *
 * @example
 * const t = compileTemplate('Hi {{ traits.firstName | default: "there" }}!', "html");
 * if (t.ok) t.template({ traits: { firstName: "<Ana>" } }); // "Hi &lt;Ana&gt;!"
 */
export function compileTemplate(
  source: string,
  mode: TemplateMode,
): { ok: true; template: Template } | { ok: false; error: string } {
  const parsed = parse(source);
  if (!parsed.ok) return parsed;
  const parts = parsed.value;
  let template: Template;
  if (parts.every((p) => typeof p === "string")) {
    const text = parts.join("");
    template = () => text;
  } else {
    const escapeValue = ESCAPERS[mode];
    template = (scope) => {
      let out = "";
      for (const p of parts)
        out += typeof p === "string" ? p : escapeValue(applyFilters(lookup(scope, p.path), p.filters));
      return out;
    };
  }
  return { ok: true, template };
}

type Render = (scope: TemplateScope) => unknown;
type JsonCompiled = { ok: true; render: Render } | { ok: false; error: string; path: string };

const MAX_DEPTH = 64;

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** A value found by a whole-string placeholder, as a JSON value: `undefined` and non-finite numbers are missing. */
function present(v: unknown): boolean {
  if (v === undefined || v === null || v === "") return false;
  return typeof v !== "number" || Number.isFinite(v);
}

function compileJsonString(value: string, path: string): JsonCompiled {
  const parsed = parse(value);
  if (!parsed.ok) return { ok: false, error: parsed.error, path };
  const parts = parsed.value;
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only !== undefined && typeof only !== "string") {
    // Exactly one placeholder: the value keeps its JSON type unless a filter makes it text.
    const transforms = only.filters.some((f) => f.kind !== "default");
    const fallback = only.filters.find((f) => f.kind === "default");
    if (transforms)
      return { ok: true, render: (scope) => applyFilters(lookup(scope, only.path), only.filters) };
    return {
      ok: true,
      render: (scope) => {
        const v = lookup(scope, only.path);
        if (present(v)) return v;
        return fallback && fallback.kind === "default" ? fallback.text : v === "" ? "" : null;
      },
    };
  }
  const t = compileTemplate(value, "text");
  if (!t.ok) return { ok: false, error: t.error, path };
  return { ok: true, render: t.template };
}

function compileJson(value: unknown, path: string, depth: number): JsonCompiled {
  if (depth > MAX_DEPTH) return { ok: false, error: `nested deeper than ${MAX_DEPTH} levels`, path };
  if (typeof value === "string") return compileJsonString(value, path);
  if (value === null || typeof value === "boolean") return { ok: true, render: () => value };
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return { ok: false, error: "numbers must be finite", path };
    return { ok: true, render: () => value };
  }
  if (Array.isArray(value)) {
    const items: Render[] = [];
    for (let i = 0; i < value.length; i++) {
      const c = compileJson(value[i], `${path}[${i}]`, depth + 1);
      if (!c.ok) return c;
      items.push(c.render);
    }
    return { ok: true, render: (scope) => items.map((f) => f(scope)) };
  }
  if (typeof value === "object" && isPlainObject(value)) {
    const entries: Array<readonly [string, Render]> = [];
    for (const [k, v] of Object.entries(value)) {
      const c = compileJson(v, path ? `${path}.${k}` : k, depth + 1);
      if (!c.ok) return c;
      entries.push([k, c.render]);
    }
    // fromEntries defines own properties: a "__proto__" key stays data and never sets a prototype.
    return { ok: true, render: (scope) => Object.fromEntries(entries.map(([k, f]) => [k, f(scope)])) };
  }
  return { ok: false, error: `not a JSON value (${typeof value})`, path };
}

/**
 * Compiles a JSON payload whose string leaves may hold templates (rendered as text: the result is a
 * JSON value, so no HTML or JSON escaping applies). A string that is exactly one `{{ path }}` yields the
 * raw value (a number stays a number, an object stays an object); when it is missing (undefined, null,
 * "" or not finite) the `default` text, else null. With a transforming filter (`upcase`, `number`, …)
 * it yields text. Object keys are not templated. `path` in an error names the leaf, like `items[0].title`.
 *
 * @example
 * const c = compileJsonTemplate({ n: "{{ traits.points }}", hi: "Hi {{ traits.name | default: \"you\" }}" });
 * if (c.ok) c.render({ traits: { points: 3 } }); // { n: 3, hi: "Hi you" }
 */
export function compileJsonTemplate(
  value: unknown,
): { ok: true; render: Render } | { ok: false; error: string; path: string } {
  const c = compileJson(value, "", 0);
  return c.ok ? { ok: true, render: c.render } : c;
}
