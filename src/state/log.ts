/**
 * Structured log lines. JSON.stringify escapes CR and LF, so no value can forge a second line
 * (Apache Unomi's CVE-2021-31164); values that look like email addresses are never written.
 */
const EMAIL = /[^\s@]+@[^\s@]+\.[^\s@]+/g;

export function log(
  level: "debug" | "info" | "warn" | "error",
  msg: string,
  fields: Record<string, unknown> = {},
): void {
  const safe: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields))
    safe[k] = typeof v === "string" ? v.replace(EMAIL, "[email]") : v;
  console.log(JSON.stringify({ level, msg, ...safe }));
}
