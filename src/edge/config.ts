import * as z from "zod";

/**
 * The worker's configuration, parsed once per isolate from `env` (vars + secrets).
 * A bad value is collected into `problems` and replaced by its default, never thrown:
 * a misconfigured deployment still serves the origin.
 */
const boolString = z.enum(["true", "false"]).transform((v) => v === "true");

const headerName = z
  .string()
  .regex(/^[a-z0-9-]+$/i, "must be a header name (letters, digits, dashes)")
  .transform((v) => v.toLowerCase());

export const ConfigSchema = z.object({
  ORIGIN: z.url({ protocol: /^https?$/ }),
  NS_PREFIX: z
    .string()
    .regex(/^\/[a-z0-9_-]+$/i, "must look like /_ns")
    .default("/_ns"),
  STORE_DEADLINE_MS: z.coerce.number().int().min(1).max(5000).default(50),
  /** How long a page waits for the origin's response headers before the visitor gets a 504 (not the body). */
  ORIGIN_TIMEOUT_MS: z.coerce
    .number({ error: "must be a whole number of milliseconds from 1 to 100000" })
    .int("must be a whole number of milliseconds from 1 to 100000")
    .min(1, "must be a whole number of milliseconds from 1 to 100000")
    .max(100_000, "must be a whole number of milliseconds from 1 to 100000")
    .default(10_000),
  /** Where the site is served (https://shop.example): the origin's redirects move there. Unset: the request's host. */
  PUBLIC_ORIGIN: z
    .url({
      protocol: /^https?$/,
      error: "must be an http:// or https:// origin, such as https://shop.example",
    })
    .refine((v) => {
      const u = new URL(v);
      return u.pathname === "/" && !u.search && !u.hash && !u.username && !u.password;
    }, "must be an origin alone (scheme, host and port), such as https://shop.example")
    .transform((v) => new URL(v).origin)
    .optional(),
  ADMIN_TOKEN: z.string().min(8).optional(),
  COOKIE_SECRET: z.string().min(16).optional(),
  IDENTITY_SECRET: z.string().min(16).optional(),
  SERVER_API_KEY: z.string().min(8).optional(),
  COOKIE_SECURE: boolString.default(true),
  COOKIE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default("ns_vid"),
  COOKIE_DOMAIN: z.string().optional(),
  BEACON_AUTO_INJECT: boolString.default(true),
  RESPECT_GPC: boolString.default(true),
  /** opt-out: a purpose nobody answered for is granted; opt-in: refused until granted (GDPR). */
  CONSENT_MODE: z.enum(["opt-out", "opt-in"]).default("opt-out"),
  DEBUG_HEADERS: boolString.default(true),
  /** Names of the response headers that say which rules applied and whether the proxy failed open. */
  RULES_HEADER: headerName.default("x-northstar-rules"),
  FAIL_OPEN_HEADER: headerName.default("x-northstar-fail-open"),
  BOT_USER_AGENTS: z.string().optional(),
});
export type Config = z.infer<typeof ConfigSchema>;

export interface ParsedConfig {
  readonly config: Config;
  readonly problems: readonly string[];
}

const cache = new WeakMap<object, ParsedConfig>();

/** Parses `env` once per isolate (env is the same object for the isolate's lifetime). */
export function readConfig(env: object): ParsedConfig {
  const hit = cache.get(env);
  if (hit) return hit;
  const raw = env as Record<string, unknown>;
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(ConfigSchema.shape)) {
    if (typeof raw[key] === "string") picked[key] = raw[key];
  }
  const problems: string[] = [];
  let parsed = ConfigSchema.safeParse(picked);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0]);
      problems.push(`${key}: ${issue.message}`);
      delete picked[key];
    }
    parsed = ConfigSchema.safeParse(picked);
  }
  const result: ParsedConfig = parsed.success
    ? { config: parsed.data, problems }
    : // Only ORIGIN has no default; without it there is nothing to proxy to.
      { config: ConfigSchema.parse({ ...picked, ORIGIN: "http://origin.invalid" }), problems };
  cache.set(env, result);
  return result;
}
