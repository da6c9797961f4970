/** Escaping for the places Northstar writes data into HTML. */

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** Attribute values are escaped the same way: quotes included, so any quoting style is safe. */
export const escapeAttr = escapeHtml;

/**
 * JSON for an inline `<script>`: `<`, `>` and `&` as \u escapes (no `</script>` or `<!--` can end
 * the script early), and U+2028/U+2029, which JSON allows but older JavaScript parsers do not.
 */
export function jsonForInlineScript(value: unknown): string {
  return (JSON.stringify(value) ?? "null")
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}
