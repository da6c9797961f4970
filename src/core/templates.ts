import { escapeHtml } from "./escape.ts";

/**
 * `{{ traits.firstName | default: "there" }}` templates: parsed once per rules version into literal
 * and lookup parts, rendered per request with no code execution. Paths are dotted identifiers read
 * with own-property checks only; a missing or non-scalar value renders the default, or nothing:
 * never "undefined" or "[object Object]".
 */
export type TemplateScope = Readonly<Record<string, unknown>>;
export type Template = (scope: TemplateScope) => string;
export type TemplateMode = "html" | "json" | "text";

type Filter =
  | { kind: "default"; value: string }
  | { kind: "upcase" | "downcase" | "capitalize" | "number" | "url_encode" }
  | { kind: "truncate"; length: number };

interface Lookup {
  readonly path: readonly string[];
  readonly filters: readonly Filter[];
}

type Part = string | Lookup;

const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);
const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const MAX_TEMPLATE = 64 * 1024;

export type Compiled<T> = { ok: true; value: T } | { ok: false; error: string };

function parseFilter(text: string): Compiled<Filter> {
  const m = /^([a-z_]+)\s*(?::\s*(.*))?$/.exec(text.trim());
  if (!m) return { ok: false, error: `bad filter "${text.trim()}"` };
  const [, name, arg] = m;
  switch (name) {
    case "default": {
      const s = /^"((?:[^"\\]|\\.)*)"$/.exec(arg?.trim() ?? "");
      if (!s) return { ok: false, error: 'default needs a quoted string: default: "there"' };
      return { ok: true, value: { kind: "default", value: s[1]!.replace(/\\(.)/g, "$1") } };
    }
    case "truncate": {
      const n = Number(arg);
      if (!Number.isInteger(n) || n < 1)
        return { ok: false, error: "truncate needs a positive whole number" };
      return { ok: true, value: { kind: "truncate", length: n } };
    }
    case "upcase":
    case "downcase":
    case "capitalize":
    case "number":
    case "url_encode":
      return { ok: true, value: { kind: name } };
    default:
      return { ok: false, error: `unknown filter "${name}"` };
  }
}

function parse(source: string): Compiled<Part[]> {
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
    const close = source.indexOf("}}", open + 2);
    if (close < 0) return { ok: false, error: `unclosed "{{" at ${open}` };
    const [pathText, ...filterTexts] = source.slice(open + 2, close).split("|");
    const path = (pathText ?? "").trim().split(".");
    if (!path.every((seg) => IDENT.test(seg)))
      return { ok: false, error: `bad path "${(pathText ?? "").trim()}"` };
    if (path.some((seg) => FORBIDDEN.has(seg)))
      return { ok: false, error: `path "${path.join(".")}" is not allowed` };
    const filters: Filter[] = [];
    for (const text of filterTexts) {
      const f = parseFilter(text);
      if (!f.ok) return f;
      filters.push(f.value);
    }
    parts.push({ path, filters });
    i = close + 2;
  }
  return { ok: true, value: parts };
}

export function lookup(scope: TemplateScope, path: readonly string[]): unknown {
  let current: unknown = scope;
  for (const seg of path) {
    if (current === null || typeof current !== "object" || !Object.hasOwn(current, seg)) return undefined;
    current = (current as Record<string, unknown>)[seg];
  }
  return current;
}

function scalar(value: unknown): string | null {
  if (typeof value === "string") return value.length ? value : null;
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : null;
  if (typeof value === "boolean") return String(value);
  return null;
}

function applyFilters(value: unknown, filters: readonly Filter[]): string {
  let text = scalar(value);
  for (const f of filters) {
    if (f.kind === "default") {
      if (text === null) text = f.value;
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
      case "capitalize":
        text = text.charAt(0).toUpperCase() + text.slice(1);
        break;
      case "truncate":
        if (text.length > f.length) text = `${text.slice(0, f.length - 1)}…`;
        break;
      case "number": {
        const n = Number(text);
        text = Number.isFinite(n) ? (Math.round(n * 100) / 100).toFixed(Number.isInteger(n) ? 0 : 2) : text;
        break;
      }
      case "url_encode":
        text = encodeURIComponent(text);
        break;
    }
  }
  return text ?? "";
}

const jsonEscape = (s: string) => JSON.stringify(s).slice(1, -1);

export function compileTemplate(source: string, mode: TemplateMode): Compiled<Template> {
  const parsed = parse(source);
  if (!parsed.ok) return parsed;
  const parts = parsed.value;
  if (parts.every((p) => typeof p === "string")) {
    const text = parts.join("");
    return { ok: true, value: () => text };
  }
  const escapeFor = mode === "html" ? escapeHtml : mode === "json" ? jsonEscape : (s: string) => s;
  return {
    ok: true,
    value: (scope) => {
      let out = "";
      for (const p of parts)
        out += typeof p === "string" ? p : escapeFor(applyFilters(lookup(scope, p.path), p.filters));
      return out;
    },
  };
}

/**
 * A JSON payload with templated strings. A string that is exactly one `{{ path }}` keeps the
 * value's type (a number stays a number); other strings render as text.
 */
export function compileJsonTemplate(value: unknown, at = ""): Compiled<(scope: TemplateScope) => unknown> {
  if (typeof value === "string") {
    const whole = /^\{\{([^{}]*)\}\}$/.exec(value.trim());
    if (whole) {
      const parsed = parse(value.trim());
      if (!parsed.ok) return { ok: false, error: `${at || "(payload)"}: ${parsed.error}` };
      const part = parsed.value[0] as Lookup;
      const onlyDefault = part.filters.every((f) => f.kind === "default");
      return {
        ok: true,
        value: (scope) => {
          const v = lookup(scope, part.path);
          // The value keeps its type when no filter transforms it; a default fills a missing one.
          if (onlyDefault && scalar(v) !== null) return v;
          if (part.filters.length === 0) return v === undefined ? null : v;
          return applyFilters(v, part.filters);
        },
      };
    }
    const t = compileTemplate(value, "text");
    return t.ok ? { ok: true, value: t.value } : { ok: false, error: `${at || "(payload)"}: ${t.error}` };
  }
  if (Array.isArray(value)) {
    const items: Array<(scope: TemplateScope) => unknown> = [];
    for (const [i, item] of value.entries()) {
      const c = compileJsonTemplate(item, `${at}[${i}]`);
      if (!c.ok) return c;
      items.push(c.value);
    }
    return { ok: true, value: (scope) => items.map((f) => f(scope)) };
  }
  if (value !== null && typeof value === "object") {
    const entries: Array<[string, (scope: TemplateScope) => unknown]> = [];
    for (const [k, v] of Object.entries(value)) {
      const c = compileJsonTemplate(v, at ? `${at}.${k}` : k);
      if (!c.ok) return c;
      entries.push([k, c.value]);
    }
    return {
      ok: true,
      value: (scope) => {
        const out: Record<string, unknown> = {};
        for (const [k, f] of entries) out[k] = f(scope);
        return out;
      },
    };
  }
  return { ok: true, value: () => value };
}
