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
 * - `{{#each items}}…{{/each}}` repeats its body for each element of a list (a ranked list's items),
 *   where `{{ item.title }}` reads the element (everything else reads the scope as outside). Values
 *   are escaped as everywhere; a loop runs at most MAX_EACH times, whatever the list's length, and
 *   loops do not nest, so a template's output stays bounded by its size.
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

/** `{{#each path}}body{{/each}}`: the body's `item.*` lookups read each element in turn. */
interface Each {
  readonly each: readonly string[];
  readonly body: readonly (string | Lookup)[];
}

type Part = string | Lookup | Each;

type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);
const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const MAX_TEMPLATE = 64 * 1024;
const MAX_DECIMALS = 10;
/** Most repetitions of one loop: ranked lists hold far fewer (ranking.ts MAX_RANKED). */
export const MAX_EACH = 50;
/** The name a loop's body reads the current element by. */
const LOOP_ITEM = "item";

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
  startsWith(text: string) {
    return this.src.startsWith(text, this.pos);
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
      const char = this.src[i]!;
      if (char === "\\" && i + 1 < this.src.length) {
        out += this.src[++i];
      } else if (char === quote) {
        this.pos = i + 1;
        return out;
      } else out += char;
    }
    return null;
  }
}

function parseFilter(reader: Reader): Parsed<Filter> {
  reader.skipSpace();
  const at = reader.pos;
  const name = reader.take(/[a-z_]/);
  if (!name) return { ok: false, error: `expected a filter name at ${at}` };
  reader.skipSpace();
  let arg: { kind: "string"; value: string } | { kind: "number"; value: number } | null = null;
  if (reader.startsWith(":")) {
    reader.pos++;
    reader.skipSpace();
    const quoted = reader.quoted();
    if (quoted !== null) arg = { kind: "string", value: quoted };
    else {
      const digits = reader.take(/[0-9]/);
      if (!digits)
        return { ok: false, error: `filter "${name}" at ${at}: expected a quoted string or a number` };
      arg = { kind: "number", value: Number(digits) };
    }
    reader.skipSpace();
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

/** A dotted path such as traits.firstName: identifiers only, reserved names refused. */
function parsePath(reader: Reader): Parsed<string[]> {
  reader.skipSpace();
  const at = reader.pos;
  const pathText = reader.take(/[A-Za-z0-9_.-]/);
  const path = pathText.split(".");
  if (!pathText || !path.every((segment) => IDENT.test(segment)))
    return { ok: false, error: `expected a path like traits.firstName at ${at}, got "${pathText}"` };
  const bad = path.find((segment) => FORBIDDEN.has(segment));
  if (bad) return { ok: false, error: `path "${pathText}" is not allowed: "${bad}" is reserved` };
  return { ok: true, value: path };
}

/** The `}}` that ends an expression. */
function closeExpression(reader: Reader, expected: string): Parsed<null> {
  reader.skipSpace();
  if (!reader.startsWith("}}")) {
    return reader.pos >= reader.src.length
      ? { ok: false, error: 'unclosed "{{"' }
      : { ok: false, error: `unexpected "${reader.src[reader.pos]}" at ${reader.pos}; expected ${expected}` };
  }
  reader.pos += 2;
  return { ok: true, value: null };
}

function parseLookup(reader: Reader): Parsed<Lookup> {
  const path = parsePath(reader);
  if (!path.ok) return path;
  const filters: Filter[] = [];
  reader.skipSpace();
  while (reader.startsWith("|")) {
    reader.pos++;
    const filter = parseFilter(reader);
    if (!filter.ok) return filter;
    filters.push(filter.value);
  }
  const closed = closeExpression(reader, '"|" or "}}"');
  if (!closed.ok) return closed;
  return { ok: true, value: { path: path.value, filters } };
}

function parse(source: string): Parsed<Part[]> {
  if (source.length > MAX_TEMPLATE) return { ok: false, error: "template longer than 64 KB" };
  const parts: Part[] = [];
  /** The open loop's body and where it opened, while inside `{{#each}}…{{/each}}`. */
  let loop: { path: string[]; body: Array<string | Lookup>; at: number } | null = null;
  const add = (part: string | Lookup) => (loop ? loop.body : parts).push(part);
  let i = 0;
  while (i < source.length) {
    const open = source.indexOf("{{", i);
    if (open < 0) {
      add(source.slice(i));
      break;
    }
    if (open > i) add(source.slice(i, open));
    const reader = new Reader(source, open + 2);
    reader.skipSpace();
    if (reader.startsWith("#each")) {
      if (loop) return { ok: false, error: `in "{{" at ${open}: loops cannot be nested` };
      reader.pos += 5;
      const path = parsePath(reader);
      if (!path.ok) return { ok: false, error: `in "{{#each" at ${open}: ${path.error}` };
      const closed = closeExpression(reader, '"}}"');
      if (!closed.ok) return { ok: false, error: `in "{{#each" at ${open}: ${closed.error}` };
      loop = { path: path.value, body: [], at: open };
    } else if (reader.startsWith("/each")) {
      reader.pos += 5;
      const closed = closeExpression(reader, '"}}"');
      if (!closed.ok) return { ok: false, error: `in "{{/each" at ${open}: ${closed.error}` };
      if (!loop) return { ok: false, error: `"{{/each}}" at ${open} closes no "{{#each}}"` };
      parts.push({ each: loop.path, body: loop.body });
      loop = null;
    } else {
      const lookup = parseLookup(reader);
      if (!lookup.ok) return { ok: false, error: `in "{{" at ${open}: ${lookup.error}` };
      add(lookup.value);
    }
    i = reader.pos;
  }
  if (loop) return { ok: false, error: `"{{#each}}" at ${loop.at} is not closed by "{{/each}}"` };
  return { ok: true, value: parts };
}

/** Reads a dotted path through own properties only; anything else is `undefined`. */
export function lookup(scope: TemplateScope, path: readonly string[]): unknown {
  return lookupFrom(scope, path, 0);
}

/** `lookup` below `root`, from the path's `from`-th segment. */
function lookupFrom(root: unknown, path: readonly string[], from: number): unknown {
  let current: unknown = root;
  for (let i = from; i < path.length; i++) {
    const segment = path[i]!;
    if (current === null || typeof current !== "object" || !Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
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
export function formatNumber(value: number, decimals: number | null): string {
  const places = decimals ?? (Number.isInteger(value) ? 0 : 2);
  const fixed = Math.abs(value).toFixed(places);
  if (fixed.includes("e")) return String(value); // ≥ 1e21: toFixed gives exponent notation
  const [whole, frac] = fixed.split(".") as [string, string | undefined];
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const negative = value < 0 && /[1-9]/.test(fixed);
  return `${negative ? "-" : ""}${grouped}${frac ? `.${frac}` : ""}`;
}

/** Lone surrogates make encodeURIComponent throw; they become U+FFFD, as in UTF-8 encoders. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function applyFilters(value: unknown, filters: readonly Filter[]): string {
  let text = scalar(value);
  for (const filter of filters) {
    if (filter.kind === "default") {
      if (text === null) text = filter.text.length > 0 ? filter.text : null;
      continue;
    }
    if (text === null) continue;
    switch (filter.kind) {
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
        if (chars.length > filter.length) text = `${chars.slice(0, filter.length - 1).join("")}…`;
        break;
      }
      case "number": {
        const number = Number(text);
        if (text.trim() !== "" && Number.isFinite(number)) text = formatNumber(number, filter.decimals);
        break;
      }
      case "url_encode":
        text = encodeURIComponent(text.replace(LONE_SURROGATE, "\uFFFD"));
        break;
    }
  }
  return text ?? "";
}

const ESCAPERS: Readonly<Record<TemplateMode, (text: string) => string>> = {
  html: escapeHtml,
  json: escapeJsonString,
  text: (text) => text,
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
  if (parts.every((part) => typeof part === "string")) {
    const text = parts.join("");
    template = () => text;
  } else if (parts.every((part) => typeof part === "string" || !("each" in part))) {
    template = flatTemplate(parts as readonly (string | Lookup)[], ESCAPERS[mode]);
  } else {
    const escapeValue = ESCAPERS[mode];
    const value = (part: Lookup, scope: TemplateScope, item: unknown) =>
      escapeValue(
        applyFilters(
          item !== NO_ITEM && part.path[0] === LOOP_ITEM
            ? lookupFrom(item, part.path, 1)
            : lookup(scope, part.path),
          part.filters,
        ),
      );
    template = (scope) => {
      let out = "";
      for (const part of parts) {
        if (typeof part === "string") out += part;
        else if ("each" in part) out += repeat(part, scope, value);
        else out += value(part, scope, NO_ITEM);
      }
      return out;
    };
  }
  return { ok: true, template };
}

/**
 * A template without loops, the common shape ("Hello {{ traits.firstName | default: \"there\" }}"):
 * each placeholder made once into a reader with its filters and escaping, and literal text around
 * one placeholder joined directly, since every placement of every page renders one.
 */
function flatTemplate(parts: readonly (string | Lookup)[], escapeValue: (text: string) => string): Template {
  const renders = parts.map((part) => (typeof part === "string" ? part : placeholder(part, escapeValue)));
  const [first, second, third] = renders;
  if (renders.length === 1 && typeof first === "function") return first;
  if (renders.length === 2 && typeof first === "string" && typeof second === "function")
    return (scope) => first + second(scope);
  if (renders.length === 2 && typeof first === "function" && typeof second === "string")
    return (scope) => first(scope) + second;
  if (
    renders.length === 3 &&
    typeof first === "string" &&
    typeof second === "function" &&
    typeof third === "string"
  )
    return (scope) => first + second(scope) + third;
  return (scope) => {
    let out = "";
    for (const render of renders) out += typeof render === "string" ? render : render(scope);
    return out;
  };
}

/**
 * One placeholder outside a loop, rendered: the value at its path, its filters, the mode's escaping.
 * With only `default` filters (the usual), the value is the path's text or else the first non-empty
 * default, as applyFilters would make it, the default escaped once.
 */
function placeholder(part: Lookup, escapeValue: (text: string) => string): (scope: TemplateScope) => string {
  const { path, filters } = part;
  const read = pathReader(path);
  if (!filters.every((filter) => filter.kind === "default"))
    return (scope) => escapeValue(applyFilters(read(scope), filters));
  let fallback = "";
  for (const filter of filters)
    if (filter.kind === "default" && filter.text.length > 0) {
      fallback = filter.text;
      break;
    }
  const shownFallback = escapeValue(fallback);
  return (scope) => {
    const text = scalar(read(scope));
    return text === null ? shownFallback : escapeValue(text);
  };
}

/** `lookup` of one path, with the two-segment paths most templates use (`traits.firstName`) read directly. */
function pathReader(path: readonly string[]): (scope: TemplateScope) => unknown {
  if (path.length !== 2) return (scope) => lookup(scope, path);
  const [root, key] = path as [string, string];
  return (scope) => {
    if (typeof scope !== "object" || scope === null || !Object.hasOwn(scope, root)) return undefined;
    const below: unknown = scope[root];
    return typeof below === "object" && below !== null && Object.hasOwn(below, key)
      ? (below as Record<string, unknown>)[key]
      : undefined;
  };
}

/** Outside a loop: `item.*` reads the scope like any other path. */
const NO_ITEM: unique symbol = Symbol("no item");

/** A loop's body once per element of its list (at most MAX_EACH); nothing when it is not a list. */
function repeat(
  loop: Each,
  scope: TemplateScope,
  value: (part: Lookup, scope: TemplateScope, item: unknown) => string,
): string {
  const list = lookup(scope, loop.each);
  if (!Array.isArray(list)) return "";
  let out = "";
  const n = Math.min(list.length, MAX_EACH);
  for (let i = 0; i < n; i++)
    for (const part of loop.body) out += typeof part === "string" ? part : value(part, scope, list[i]);
  return out;
}

type Render = (scope: TemplateScope) => unknown;
type JsonCompiled = { ok: true; render: Render } | { ok: false; error: string; path: string };

const MAX_DEPTH = 64;

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A value found by a whole-string placeholder, as a JSON value: `undefined` and non-finite numbers are missing. */
function present(value: unknown): boolean {
  if (value === undefined || value === null || value === "") return false;
  return typeof value !== "number" || Number.isFinite(value);
}

function compileJsonString(value: string, path: string): JsonCompiled {
  const parsed = parse(value);
  if (!parsed.ok) return { ok: false, error: parsed.error, path };
  const parts = parsed.value;
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only !== undefined && typeof only !== "string" && !("each" in only)) {
    // Exactly one placeholder: the value keeps its JSON type unless a filter makes it text.
    const transforms = only.filters.some((filter) => filter.kind !== "default");
    const fallback = only.filters.find((filter) => filter.kind === "default");
    if (transforms)
      return { ok: true, render: (scope) => applyFilters(lookup(scope, only.path), only.filters) };
    return {
      ok: true,
      render: (scope) => {
        const found = lookup(scope, only.path);
        if (present(found)) return found;
        return fallback && fallback.kind === "default" ? fallback.text : found === "" ? "" : null;
      },
    };
  }
  const text = compileTemplate(value, "text");
  if (!text.ok) return { ok: false, error: text.error, path };
  return { ok: true, render: text.template };
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
      const compiled = compileJson(value[i], `${path}[${i}]`, depth + 1);
      if (!compiled.ok) return compiled;
      items.push(compiled.render);
    }
    return { ok: true, render: (scope) => items.map((render) => render(scope)) };
  }
  if (typeof value === "object" && isPlainObject(value)) {
    const entries: Array<readonly [string, Render]> = [];
    for (const [key, member] of Object.entries(value)) {
      const compiled = compileJson(member, path ? `${path}.${key}` : key, depth + 1);
      if (!compiled.ok) return compiled;
      entries.push([key, compiled.render]);
    }
    // fromEntries defines own properties: a "__proto__" key stays data and never sets a prototype.
    return {
      ok: true,
      render: (scope) => Object.fromEntries(entries.map(([key, render]) => [key, render(scope)])),
    };
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
  const compiled = compileJson(value, "", 0);
  return compiled.ok ? { ok: true, render: compiled.render } : compiled;
}
