import { type Context, Hono } from "hono";
import { routePath } from "hono/route";
import { readConfig } from "../platform/config.ts";
import type { Env } from "../platform/env.ts";
import { log } from "../platform/log.ts";
import { type ConsoleEnv, checkPost, requireSession, signIn, signInForm, signOut } from "./auth.ts";
import {
  type ConsoleCall,
  experimentResults,
  listExperiments,
  person,
  programmeLift,
  rollbackTo,
  rulesOverview,
  rulesVersionText,
} from "./data.ts";
import { diffLines } from "./diff.ts";
import { html } from "./html.ts";
import { cancelJourney, DEAD_LETTERS_SHOWN, deadLetters, personJourneys } from "./journeys-data.ts";
import { bare, CONSOLE_CSS, htmlResponse, type PageContext, page } from "./layout.ts";
import { experimentPage, experimentsPage } from "./pages/experiments.ts";
import { cancelConfirmPage, deadLettersPage, journeysSection } from "./pages/journeys.ts";
import { personPage } from "./pages/person.ts";
import { programmePage } from "./pages/programme.ts";
import { diffPage, rollbackConfirmPage, rulesPage } from "./pages/rules.ts";

/**
 * The console at `<NS_PREFIX>/console`: server-rendered pages over the admin API, no script.
 * Routes are built once per prefix, as the API's are.
 */
export const consoleBase = (prefix: string): string => `${prefix}/console`;

/** A journey entry's instance id (journey name and a hash); anything else is not cancelled. */
const INSTANCE = /^[A-Za-z0-9._-]{1,100}$/;

/** Version ids as the rules store writes them; anything else is not looked up. */
const VERSION = /^[A-Za-z0-9._-]{1,64}$/;

function build(base: string): Hono<ConsoleEnv> {
  const app = new Hono<ConsoleEnv>({ strict: false }).basePath(base);
  app.use("*", async (c, next) => {
    c.set("base", base);
    await next();
  });
  app.use("*", checkPost);

  // Before the session check: the sign-in page and its stylesheet are all a stranger can see.
  app.get(
    "/console.css",
    () =>
      new Response(CONSOLE_CSS, {
        headers: { "content-type": "text/css; charset=utf-8", "cache-control": "public, max-age=300" },
      }),
  );
  app.get("/sign-in", (c) => htmlResponse(signInForm(base, c.req.query("signed-out") === "1")));
  app.post("/sign-in", signIn);

  app.use("*", requireSession);
  const ctxOf = (c: { get(k: "csrf"): string }): PageContext => ({ base, csrf: c.get("csrf") });
  const callOf = (c: Context<ConsoleEnv>): ConsoleCall => ({
    env: c.env,
    // The worker's own context, which Hono types with its narrower interface of the same object.
    ctx: c.executionCtx as ExecutionContext,
    url: new URL(c.req.url),
  });

  app.post("/sign-out", () => signOut(base));
  app.get("/", (c) => c.redirect(`${base}/experiments`, 303));
  app.get("/experiments", async (c) =>
    htmlResponse(experimentsPage(ctxOf(c), await listExperiments(callOf(c)))),
  );
  app.get("/experiments/:id", async (c) => {
    const id = c.req.param("id");
    return htmlResponse(experimentPage(ctxOf(c), `Experiment ${id}`, await experimentResults(callOf(c), id)));
  });
  app.get("/programme", async (c) => {
    const lift = await programmeLift(callOf(c));
    // 404: the active rules set no global holdout, which the page explains rather than reports.
    return htmlResponse(programmePage(ctxOf(c), !lift.ok && lift.status === 404 ? "no holdout" : lift));
  });

  app.get("/rules", async (c) => {
    const rolled = c.req.query("rolled-back");
    const notice = rolled && VERSION.test(rolled) ? `Rolled back to ${rolled}.` : null;
    return htmlResponse(rulesPage(ctxOf(c), await rulesOverview(callOf(c)), notice));
  });
  app.get("/rules/diff", async (c) => {
    const from = c.req.query("from") ?? "";
    const to = c.req.query("to") ?? "";
    if (!VERSION.test(from) || !VERSION.test(to)) {
      return htmlResponse(
        page(ctxOf(c), "Rules", html`<p class="error">Choose two published versions.</p>`),
        400,
      );
    }
    const [a, b] = await Promise.all([rulesVersionText(callOf(c), from), rulesVersionText(callOf(c), to)]);
    const hunks = !a.ok ? a : !b.ok ? b : { ok: true as const, value: diffLines(a.value, b.value) };
    return htmlResponse(diffPage(ctxOf(c), from, to, hunks), hunks.ok ? 200 : hunks.status);
  });
  app.get("/rules/rollback", async (c) => {
    const to = c.req.query("to") ?? "";
    if (!VERSION.test(to)) return c.redirect(`${base}/rules`, 303);
    const overview = await rulesOverview(callOf(c));
    return htmlResponse(rollbackConfirmPage(ctxOf(c), to, overview.ok ? overview.value.active : null));
  });
  app.post("/rules/rollback", async (c) => {
    const to = c.get("form").get("to") ?? "";
    const done = VERSION.test(to)
      ? await rollbackTo(callOf(c), to)
      : { ok: false as const, message: "no such version" };
    if (!done.ok) {
      return htmlResponse(
        page(
          ctxOf(c),
          "Rollback refused",
          html`<p class="error">${done.message}</p><p><a href="${base}/rules">Back to the rules</a></p>`,
        ),
        409,
      );
    }
    log("info", "console_rules_rolled_back", { to, from: done.from });
    return c.redirect(`${base}/rules?rolled-back=${encodeURIComponent(to)}`, 303);
  });

  app.get("/person", async (c) => {
    const home = new URL("/", c.req.url).toString();
    const id = c.req.query("id")?.trim();
    if (!id) return htmlResponse(personPage(ctxOf(c), null, null, home));
    const channel = c.req.query("channel") ?? "web";
    const q = { id, url: c.req.query("url") || home, channel };
    let pageUrl: URL;
    try {
      pageUrl = new URL(q.url, c.req.url);
    } catch {
      return htmlResponse(personPage(ctxOf(c), q, null, home, "The page is not a URL."), 400);
    }
    const [view, journeys] = await Promise.all([
      person(callOf(c), id, pageUrl, channel),
      personJourneys(callOf(c), id),
    ]);
    const cancelled = c.req.query("cancelled");
    const notice =
      cancelled && INSTANCE.test(cancelled) ? html`<p class="ok">Cancelled ${cancelled}.</p>` : html``;
    return htmlResponse(
      personPage(ctxOf(c), q, view, home, null, html`${notice}${journeysSection(ctxOf(c), id, journeys)}`),
    );
  });
  app.get("/person/journeys/cancel", (c) => {
    const id = c.req.query("id")?.trim() ?? "";
    const instance = c.req.query("instance") ?? "";
    if (!id || !INSTANCE.test(instance)) return c.redirect(`${base}/person`, 303);
    return htmlResponse(cancelConfirmPage(ctxOf(c), id, instance));
  });
  app.post("/person/journeys/cancel", async (c) => {
    const id = c.get("form").get("id")?.trim() ?? "";
    const instance = c.get("form").get("instance") ?? "";
    const done =
      id && INSTANCE.test(instance)
        ? await cancelJourney(callOf(c), id, instance)
        : { ok: false as const, status: 400, message: "no such journey entry" };
    if (!done.ok) {
      return htmlResponse(
        page(
          ctxOf(c),
          "Cancel refused",
          html`<p class="error">${done.message}</p><p><a href="${base}/person?${String(new URLSearchParams({ id }))}">Back to the person</a></p>`,
        ),
        done.status === 404 ? 404 : 409,
      );
    }
    log("info", "console_journey_cancelled", { instance });
    return c.redirect(`${base}/person?${new URLSearchParams({ id, cancelled: instance })}`, 303);
  });

  app.get("/dead-letters", async (c) =>
    htmlResponse(deadLettersPage(ctxOf(c), await deadLetters(callOf(c)), DEAD_LETTERS_SHOWN)),
  );

  app.notFound(() =>
    htmlResponse(bare(base, "Not found", html`<p><a href="${base}/experiments">The console</a></p>`), 404),
  );
  app.onError((err, c) => {
    log("error", "console_error", { method: c.req.method, route: routePath(c), error: String(err) });
    return htmlResponse(
      bare(base, "Something went wrong", html`<p class="error">Something went wrong on our side.</p>`),
      500,
    );
  });
  return app;
}

/** The console built per configured prefix: one per deployment; bounded all the same. */
const consoles = new Map<string, Hono<ConsoleEnv>>();
const MAX_CONSOLES = 4;

/** True for the console's paths under the configured prefix. */
export function isConsolePath(pathname: string, env: Env): boolean {
  const base = consoleBase(readConfig(env).config.NS_PREFIX);
  return pathname === base || pathname.startsWith(`${base}/`);
}

export function handleConsole(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
): Promise<Response> | Response {
  const base = consoleBase(readConfig(env).config.NS_PREFIX);
  let app = consoles.get(base);
  if (!app) {
    app = build(base);
    if (consoles.size >= MAX_CONSOLES) consoles.clear();
    consoles.set(base, app);
  }
  return app.fetch(request, env, ctx);
}
