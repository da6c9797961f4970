import { escapeHtml } from "../core/escape.ts";

/**
 * HTML built only through the `html` tag: every interpolated value is escaped unless it is already
 * Html (made by this tag or `raw`). So no page can forget to escape a trait, an id or a rule's text.
 */
export class Html {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

type Part = Html | string | number | boolean | null | undefined | readonly Part[];

function render(value: Part): string {
  if (value === null || value === undefined || value === false) return "";
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join("");
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0] ?? "";
  for (const [i, value] of values.entries()) out += render(value) + (strings[i + 1] ?? "");
  return new Html(out);
}

/** Markup this module made itself (never data): the one way past the escaping. */
export const raw = (text: string): Html => new Html(text);

/** A number as the page prints it: whole numbers as they are, others to `digits` places. */
export function num(n: number, digits = 3): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

/** A rate as a percentage with one decimal. */
export const pct = (n: number): string => `${(n * 100).toFixed(1)}%`;
