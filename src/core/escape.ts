/** Escaping for the places Northstar writes data into HTML, attributes, JSON strings and inline scripts. */

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/**
 * Text for an HTML text node: `& < > " '` as entities.
 *
 * @example escapeHtml(`<b>"Ana" & 'Bo'</b>`) // "&lt;b&gt;&quot;Ana&quot; &amp; &#39;Bo&#39;&lt;/b&gt;"
 */
const HTML_SPECIAL = /[&<>"']/;

export function escapeHtml(value: string): string {
  // A long text goes through the regex engine; a short one (a name, a city: what templates render
  // on every page, and most have nothing to escape) is escaped in one look at each character, with
  // no regex entered and nothing allocated when nothing needs escaping.
  if (value.length > 64)
    return HTML_SPECIAL.test(value) ? value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!) : value;
  let out = "";
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const entity = entityOf(value.charCodeAt(i));
    if (entity === null) continue;
    out += value.slice(from, i) + entity;
    from = i + 1;
  }
  return from === 0 ? value : out + value.slice(from);
}

function entityOf(code: number): string | null {
  switch (code) {
    case 38:
      return "&amp;";
    case 60:
      return "&lt;";
    case 62:
      return "&gt;";
    case 34:
      return "&quot;";
    case 39:
      return "&#39;";
    default:
      return null;
  }
}

/**
 * A value for a quoted HTML attribute. Same escapes as text: both quote kinds are escaped, so the value
 * is safe whichever quotes surround it. (An unquoted attribute is never safe; always quote.)
 */
export const escapeAttr: (value: string) => string = escapeHtml;

const SCRIPT_UNSAFE = /[<>&\u2028\u2029]/g;
const unicodeEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/**
 * The content of a JSON string literal (no surrounding quotes): JSON escapes, plus `< > &` and
 * U+2028/U+2029 as \u escapes, so the result is also safe inside an inline `<script>`.
 *
 * @example `"${escapeJsonString('say "hi"</script>')}"` // "say \"hi\"\u003c/script\u003e"
 */
export function escapeJsonString(value: string): string {
  return JSON.stringify(value).slice(1, -1).replace(SCRIPT_UNSAFE, unicodeEscape);
}

/**
 * JSON for an inline `<script>`: `<`, `>` and `&` as \u escapes (no `</script>` or `<!--` can end
 * the script early), and U+2028/U+2029, which JSON allows but older JavaScript parsers do not.
 * `undefined` (which JSON.stringify drops) becomes `null`. Still valid JSON: JSON.parse gives the value back.
 *
 * @example jsonForInlineScript({ q: "</script>" }) // '{"q":"\u003c/script\u003e"}'
 */
export function jsonForInlineScript(value: unknown): string {
  return (JSON.stringify(value) ?? "null").replace(SCRIPT_UNSAFE, unicodeEscape);
}
