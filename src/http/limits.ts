import { sha256Hex } from "../platform/crypto.ts";
import { withDeadline } from "../platform/deadline.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { type Caller, callerOf } from "../state/identity.ts";
import type { AppContext } from "./app-env.ts";
import { jsonError } from "./errors.ts";
import type { ResponseDoc } from "./openapi.ts";
import { storeDeadlineMs } from "./store-calls.ts";

/**
 * Write limits, with Cloudflare's rate-limiting binding (docs/decisions.md, record 10). The visitor's
 * own object caps its events, but a client that drops its cookie is a new visitor each time: only
 * limits keyed by who sends (the address, the server key) and one over all writes bound it.
 *
 * - a browser's write counts against its address (`cf-connecting-ip`; IPv6 by its /64: one host
 *   holds a whole /64), and, when it carries no valid visitor cookie (it would make a new visitor),
 *   against a far smaller allowance per address as well;
 * - a server's write (the API key, or the admin token on decide) counts against its key, wherever
 *   it comes from: a backend's addresses change, its key does not;
 * - every write counts against one global key.
 *
 * Routes call `limitWrite` before any store call, so a refused write creates no visitor object.
 */

/** Each limiter's window (`period` in wrangler.toml, 60 s for all): the longest a refused client waits. */
export const LIMIT_PERIOD_SECONDS = 60;

type LimiterName = "LIMIT_CLIENT_WRITES" | "LIMIT_NEW_VISITORS" | "LIMIT_SERVER_WRITES" | "LIMIT_ALL_WRITES";

const REFUSED: Record<LimiterName, string> = {
  LIMIT_CLIENT_WRITES: "too many writes from this address; retry later",
  LIMIT_NEW_VISITORS: "too many writes without a visitor cookie from this address; retry later",
  LIMIT_SERVER_WRITES: "too many writes with this server key; retry later",
  LIMIT_ALL_WRITES: "too many writes overall; retry later",
};

/**
 * The key an address is counted by: an IPv4 address whole, an IPv6 address by its first 64 bits
 * (an IPv4-mapped one as the IPv4 address). Null when there is none: the request did not come
 * through Cloudflare's edge or `wrangler dev` (both set the header), e.g. a service binding.
 */
export function addressKey(address: string | null | undefined): string | null {
  const raw = address?.trim().toLowerCase();
  if (!raw) return null;
  if (!raw.includes(":")) return raw.slice(0, 64);
  const ip = raw.split("%")[0]!; // a zone id names the host's interface, not the client
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (mapped) return mapped[1]!;
  const [head, tail, ...rest] = ip.split("::");
  const groups = (s: string | undefined) => (s ? s.split(":") : []);
  const before = groups(head);
  const after = groups(tail);
  const all =
    tail === undefined
      ? before
      : [...before, ...Array(Math.max(0, 8 - before.length - after.length)).fill("0"), ...after];
  if (rest.length || all.length !== 8 || all.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return raw.slice(0, 64);
  return `${all
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

/** A server key is counted by a digest, never by the secret itself. */
async function serverKey(request: Request): Promise<string> {
  const token = /^Bearer\s+(.+)$/i.exec(request.headers.get("authorization") ?? "")?.[1]?.trim() ?? "";
  return `key:${await sha256Hex(token, 12)}`;
}

/** How a write route's OpenAPI entry describes its 429. */
export const RATE_LIMITED_DOC: ResponseDoc = {
  description:
    "`rate_limited`: too many writes from this address (far fewer without a visitor cookie), with this server key, or overall",
  headers: { "Retry-After": "seconds to wait before retrying" },
};

const unbound = new Set<LimiterName>();

/** A missing binding is a configuration problem, said once per isolate: writes go on without it. */
function bindingOf(env: Env, name: LimiterName): RateLimit | null {
  const binding = env[name];
  if (binding) return binding;
  if (!unbound.has(name)) {
    unbound.add(name);
    log("warn", "config_problem", {
      name,
      message: "is not bound ([[ratelimits]] in wrangler.toml)",
      usedInstead: "no limit",
    });
  }
  return null;
}

/**
 * Counts this write against every limit that applies: null to go on, or the 429 to answer
 * (`rate_limited`, `Retry-After`). The limiters share one deadline (the store deadline's read
 * multiple) and fail open: a limiter that errs or does not answer blocks nothing.
 *
 * @example const limited = await limitWrite(c); if (limited) return limited;
 */
export async function limitWrite(c: AppContext, known?: Caller): Promise<Response | null> {
  const caller = known ?? (await callerOf(c.req.raw, c.env));
  const checks: Array<[LimiterName, string]> = [["LIMIT_ALL_WRITES", "all"]];
  if (caller.kind === "server") checks.push(["LIMIT_SERVER_WRITES", await serverKey(c.req.raw)]);
  else {
    const address = addressKey(c.req.header("cf-connecting-ip"));
    if (address) {
      checks.push(["LIMIT_CLIENT_WRITES", address]);
      if (!caller.visitorId) checks.push(["LIMIT_NEW_VISITORS", address]);
    }
  }
  const deadline = storeDeadlineMs(c.env, "read");
  const outcomes = await Promise.all(
    checks.map(async ([name, key]) => {
      const binding = bindingOf(c.env, name);
      if (!binding) return { name, allowed: true };
      const outcome = await withDeadline(() => binding.limit({ key }), deadline);
      if (outcome.ok) return { name, allowed: outcome.value.success };
      log("warn", "rate_limit_failed_open", { limiter: name, reason: outcome.reason });
      return { name, allowed: true };
    }),
  );
  const refused = outcomes.find((o) => !o.allowed);
  if (!refused) return null;
  const res = jsonError("rate_limited", REFUSED[refused.name]);
  res.headers.set("retry-after", String(LIMIT_PERIOD_SECONDS));
  return res;
}
