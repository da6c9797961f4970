import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import * as z from "zod";
import { addressKey } from "../http/limits.ts";
import { readLimited } from "../http/request.ts";
import { secretsEqual } from "../platform/bearer.ts";
import { readConfig } from "../platform/config.ts";
import { withDeadline } from "../platform/deadline.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { type Html, html } from "./html.ts";
import { bare, htmlResponse } from "./layout.ts";
import { signInPage } from "./pages/sign-in.ts";
import {
  csrfToken,
  newSession,
  openSession,
  SESSION_COOKIE,
  type Session,
  sealSession,
  sessionCookie,
} from "./session.ts";

/**
 * Who may use the console, and how every change is protected: a signed session cookie (made by
 * signing in with the admin token), and on every POST the request's Origin and the session's CSRF
 * token. Sign-in attempts are counted per address by the LIMIT_CONSOLE_SIGNIN binding.
 */
export type ConsoleEnv = {
  Bindings: Env;
  Variables: { session: Session; csrf: string; base: string; form: URLSearchParams };
};

/** A console form is a few fields: 8 KB is plenty. */
const FORM_BYTES = 8 * 1024;

const now = (): number => Math.floor(Date.now() / 1000);

const refused = (base: string, status: number, title: string, message: string): Response =>
  htmlResponse(bare(base, title, html`<p class="error">${message}</p>`), status);

/** The origin a browser's POST must come from: the site's public origin, else the request's own. */
function expectedOrigin(env: Env, url: URL): string {
  return readConfig(env).config.PUBLIC_ORIGIN ?? url.origin;
}

/**
 * Every POST: the body read as a form (at most 8 KB, through the request module), and its Origin
 * header equal to the console's origin. A browser always sends Origin on a form POST: without it
 * the request did not come from one of the console's own pages.
 */
export const checkPost: MiddlewareHandler<ConsoleEnv> = async (c, next) => {
  if (c.req.method !== "POST") return next();
  const base = c.get("base");
  const origin = c.req.header("origin");
  if (origin !== expectedOrigin(c.env, new URL(c.req.url))) {
    return refused(base, 403, "Refused", "This form did not come from the console's own page.");
  }
  const read = await readLimited(c.req.raw, FORM_BYTES);
  if (!read.ok) return refused(base, 413, "Refused", "The form is too large.");
  c.set("form", new URLSearchParams(read.text));
  return next();
};

/**
 * Everything but the sign-in page and the stylesheet needs a valid session: without one a page
 * redirects to sign-in and a change is refused. A POST also needs the session's CSRF token.
 */
export const requireSession: MiddlewareHandler<ConsoleEnv> = async (c, next) => {
  const base = c.get("base");
  const token = readConfig(c.env).config.ADMIN_TOKEN;
  if (!token)
    return refused(base, 503, "Console closed", "ADMIN_TOKEN is not configured: the console is closed.");
  const session = await openSession(token, getCookie(c, SESSION_COOKIE), now());
  if (!session) {
    if (c.req.method === "GET" || c.req.method === "HEAD") return c.redirect(`${base}/sign-in`, 303);
    return refused(base, 401, "Signed out", "Your session has ended: sign in again.");
  }
  const csrf = await csrfToken(token, session);
  if (c.req.method === "POST") {
    const given = c.get("form").get("csrf") ?? "";
    if (!(await secretsEqual(given, csrf))) {
      return refused(
        base,
        403,
        "Refused",
        "This form has expired or did not come from this session: reload the page and try again.",
      );
    }
  }
  c.set("session", session);
  c.set("csrf", csrf);
  return next();
};

const SignInForm = z.object({ token: z.string().min(1).max(1024) });

/** Counts one sign-in attempt from this address; fails open when the limiter does not answer. */
async function attemptAllowed(env: Env, request: Request): Promise<boolean> {
  const limiter = env.LIMIT_CONSOLE_SIGNIN;
  if (!limiter) return true;
  const key = `console-sign-in:${addressKey(request.headers.get("cf-connecting-ip")) ?? "no-address"}`;
  const ms = readConfig(env).config.STORE_DEADLINE_MS * 4;
  const outcome = await withDeadline(() => limiter.limit({ key }), ms);
  if (outcome.ok) return outcome.value.success;
  log("warn", "rate_limit_failed_open", { limiter: "LIMIT_CONSOLE_SIGNIN", reason: outcome.reason });
  return true;
}

/** POST sign-in: the admin token (compared in constant time) for a session cookie. */
export async function signIn(c: Context<ConsoleEnv>): Promise<Response> {
  const base = c.get("base");
  const token = readConfig(c.env).config.ADMIN_TOKEN;
  const page = (problem: string, status: number): Response => htmlResponse(signInPage(base, problem), status);
  if (!token) return page("ADMIN_TOKEN is not configured: the console is closed.", 503);
  if (!(await attemptAllowed(c.env, c.req.raw))) {
    return htmlResponse(
      signInPage(base, "Too many sign-in attempts from this address: wait a minute."),
      429,
      {
        "retry-after": "60",
      },
    );
  }
  const form = SignInForm.safeParse(Object.fromEntries(c.get("form")));
  if (!form.success || !(await secretsEqual(form.data.token, token))) {
    log("warn", "console_sign_in_refused", {});
    return page("That is not the admin token.", 401);
  }
  const sealed = await sealSession(token, newSession(now()));
  return new Response(null, {
    status: 303,
    headers: {
      location: `${base}/experiments`,
      "set-cookie": sessionCookie(base, sealed),
      "cache-control": "no-store",
    },
  });
}

/** POST sign-out: the cookie is ended. (A copy of it stays valid until it expires: sessions are not stored.) */
export function signOut(base: string): Response {
  return new Response(null, {
    status: 303,
    headers: {
      location: `${base}/sign-in?signed-out=1`,
      "set-cookie": sessionCookie(base, null),
      "cache-control": "no-store",
    },
  });
}

export function signInForm(base: string, signedOut: boolean): Html {
  return signInPage(base, null, signedOut ? "You are signed out." : null);
}
