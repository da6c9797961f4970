/**
 * Structured log lines. JSON.stringify escapes CR and LF, so no value can forge a second line
 * (Apache Unomi's CVE-2021-31164); anything that looks like an email address, at any depth, is
 * replaced before it is written. Log counts and reasons, not people: pass no raw ids or props.
 */
const EMAIL = /[^\s@"]+@[^\s@"]+\.[^\s@"]+/g;

export type LogLevel = "debug" | "info" | "warn" | "error";

/**
 * @example log("info", "identified", { merged: true, events: 3 })
 */
export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  console.log(redactedLine(level, msg, fields));
}

/** The line `log` writes (exported for tests). */
export function redactedLine(level: LogLevel, msg: string, fields: Record<string, unknown>): string {
  return JSON.stringify({ ...fields, level, msg }, (_key, value: unknown) =>
    typeof value === "string" ? value.replace(EMAIL, "[email]") : value,
  );
}
