import * as z from "zod";
import { log } from "./log.ts";

/**
 * The worker's configuration, parsed once per isolate from `env` (vars + secrets).
 * A bad value is collected into `problems` and replaced by its default, never thrown:
 * a misconfigured deployment still serves the origin. Each problem is logged once per isolate.
 */
const boolString = z.enum(["true", "false"]).transform((v) => v === "true");

/** A whole number written as digits (vars are strings: "1e3" or "12.5" is a mistake, not a number). */
const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().min(min).max(max));

const headerName = z
  .string()
  .regex(/^[a-z0-9-]+$/i, "must be a header name (letters, digits, dashes)")
  .transform((v) => v.toLowerCase());

const DEADLINE = "must be a whole number of milliseconds from 1 to 5000";

/** A webhook destination: `log`, or an http(s) URL (http only for local development). */
const webhookTarget = z.union([
  z.literal("log"),
  z.url({ protocol: /^https?$/, error: 'must be "log" or an http(s) URL such as https://hooks.example/sms' }),
]);

export const ConfigSchema = z.object({
  ORIGIN: z.url({
    protocol: /^https?$/,
    error: "must be an absolute http:// or https:// URL, such as https://www.example.com",
  }),
  NS_PREFIX: z
    .string()
    .regex(/^\/[a-z0-9_-]+$/i, "must look like /_ns")
    .default("/_ns"),
  STORE_DEADLINE_MS: z.coerce
    .number({ error: DEADLINE })
    .int(DEADLINE)
    .min(1, DEADLINE)
    .max(5000, DEADLINE)
    .default(50),
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
  /** The longest an identity token may still be valid when it arrives (a login hands it over in seconds). */
  IDENTITY_TOKEN_MAX_TTL_SECONDS: z.coerce.number().int().min(1).max(3600).default(600),
  SERVER_API_KEY: z.string().min(8).optional(),
  COOKIE_SECURE: boolString.default(true),
  COOKIE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, "must be letters, digits, _ or -")
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
  /**
   * Where the rules come from: `kv` (published versions, hot-loaded, the bundled file until one is
   * published) or `file` (only the rules file built into the worker: `npm start`, where an edit to
   * it shows on the next page because wrangler dev rebuilds on change).
   */
  RULES_SOURCE: z.enum(["kv", "file"]).default("kv"),
  /** Bounds of each visitor's event log: how many events, and how many days back, it keeps. */
  EVENT_LOG_MAX: wholeNumber(1, 10_000).default(500),
  EVENT_LOG_MAX_AGE_DAYS: wholeNumber(1, 400).default(30),
  /**
   * How many idle days an anonymous visitor's object is kept before it deletes itself (a known
   * person's is kept 400, the cookie's lifetime). Stored data is the largest cost of the visitors
   * who never come back (docs/benchmarks.md); a returning browser after it is a new visitor again.
   */
  ANONYMOUS_IDLE_DAYS: wholeNumber(1, 400).default(400),
  /**
   * Where journeys' messages go, per channel (docs/journeys.md, the delivery contract): an https URL
   * that receives signed webhooks, or `log` (the default) to write each message to the log only.
   */
  WEBHOOK_SMS: webhookTarget.default("log"),
  WEBHOOK_PUSH: webhookTarget.default("log"),
  WEBHOOK_EMAIL: webhookTarget.default("log"),
  /** The HMAC key webhooks are signed with; WEBHOOK_SECRET_<CHANNEL> gives one channel its own. */
  WEBHOOK_SECRET: z.string().min(16).optional(),
  WEBHOOK_SECRET_SMS: z.string().min(16).optional(),
  WEBHOOK_SECRET_PUSH: z.string().min(16).optional(),
  WEBHOOK_SECRET_EMAIL: z.string().min(16).optional(),
  /** Attempts a message gets before it is kept as a dead letter: the delivery consumer's max_retries + 1. */
  DELIVERY_MAX_ATTEMPTS: wholeNumber(1, 100).default(6),
});
export type Config = z.infer<typeof ConfigSchema>;

/** One bad variable: which, what is wrong with it, and what the worker does instead. Never its value. */
export interface ConfigProblem {
  readonly name: string;
  readonly message: string;
  readonly usedInstead: string;
}

export interface ParsedConfig {
  readonly config: Config;
  readonly problems: readonly ConfigProblem[];
}

/** Secrets' problems are described from the issue alone: a message can echo its input. */
const SECRETS = new Set(["ADMIN_TOKEN", "COOKIE_SECRET", "IDENTITY_SECRET", "SERVER_API_KEY"]);

/** Only ORIGIN has no default; without it there is nothing to proxy to, and pages answer 502. */
const NO_ORIGIN = "http://origin.invalid";

function whatIsWrong(key: string, issue: z.core.$ZodIssue, raw: unknown): string {
  if (raw === undefined) return "is not set";
  if (SECRETS.has(key)) {
    return issue.code === "too_small"
      ? `must be at least ${String(issue.minimum)} characters`
      : "is not valid";
  }
  return issue.message;
}

function fallback(key: string, config: Config): string {
  if (key === "ORIGIN") return "nothing: pages answer 502 until ORIGIN is fixed";
  const value = SECRETS.has(key) ? undefined : config[key as keyof Config];
  return value === undefined ? "nothing (as if it were not set)" : String(value);
}

const cache = new WeakMap<object, ParsedConfig>();

/**
 * Parses `env` once per isolate (env is the same object for the isolate's lifetime), at its first
 * request, and logs each problem then: once per isolate, not once per request.
 */
export function readConfig(env: object): ParsedConfig {
  const hit = cache.get(env);
  if (hit) return hit;
  const raw = env as Record<string, unknown>;
  const picked: Record<string, unknown> = {};
  const wrong = new Map<string, string>();
  for (const key of Object.keys(ConfigSchema.shape)) {
    const value = raw[key];
    if (typeof value === "string") picked[key] = value;
    // wrangler.toml passes an unquoted `STORE_DEADLINE_MS = 50` as a number: named, not ignored.
    else if (value !== undefined) wrong.set(key, "must be text (in wrangler.toml, put the value in quotes)");
  }
  let parsed = ConfigSchema.safeParse(picked);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0]);
      if (!wrong.has(key)) wrong.set(key, whatIsWrong(key, issue, raw[key]));
      delete picked[key];
    }
    parsed = ConfigSchema.safeParse(picked);
  }
  const config = parsed.success ? parsed.data : ConfigSchema.parse({ ...picked, ORIGIN: NO_ORIGIN });
  const problems = [...wrong].map(([name, message]) => ({
    name,
    message,
    usedInstead: fallback(name, config),
  }));
  for (const problem of problems) log("warn", "config_problem", { ...problem });
  const result: ParsedConfig = { config, problems };
  cache.set(env, result);
  return result;
}

/** Whether pages have an origin to go to: false when ORIGIN is missing or bad (they answer 502). */
export function hasOrigin({ problems }: ParsedConfig): boolean {
  return !problems.some((p) => p.name === "ORIGIN");
}
