import * as z from "zod";
import { handle } from "../http/app.ts";
import { type ExperimentResults, ExperimentResultsSchema } from "../http/experiment-results.ts";
import { readConfig } from "../platform/config.ts";
import { withDeadline } from "../platform/deadline.ts";
import type { Env } from "../platform/env.ts";
import {
  ACTIVE_KEY,
  GLOBAL_HOLDOUT,
  HISTORY_KEY,
  HistorySchema,
  parsePointer,
  type RulesKv,
  rollbackRules,
  StoredVersionSchema,
  versionKey,
} from "../rules/index.ts";
import { activeRules } from "../state/rules-loader.ts";

/**
 * Everything the console shows, fetched in one place per page. Experiments, people and explanations
 * come from the worker's own admin API, called in-process with the admin token, so the console sees
 * exactly what an API client sees (privacy gate, deadlines, failures) and gains new fields when the
 * API does. Rules history and rollback are the CLI's own store functions over the RULES namespace.
 * Experiment results are parsed with the route's own schema; other answers with view schemas that
 * name only what the pages draw (fields the API adds later pass through).
 */

export interface ConsoleCall {
  readonly env: Env;
  readonly ctx: ExecutionContext;
  /** The request's URL: internal calls go to the same host, under the API prefix. */
  readonly url: URL;
}

export type Fetched<T> = { ok: true; value: T } | { ok: false; status: number; message: string };

/** One admin API call, in-process: the same routes, checks and answers as over HTTP. */
async function api<S extends z.ZodType>(
  call: ConsoleCall,
  path: string,
  schema: S,
  init: { method?: string; body?: unknown } = {},
): Promise<Fetched<z.infer<S>>> {
  const { config } = readConfig(call.env);
  const url = new URL(`${config.NS_PREFIX}${path}`, call.url);
  const headers = new Headers({ authorization: `Bearer ${config.ADMIN_TOKEN ?? ""}` });
  if (init.body !== undefined) headers.set("content-type", "application/json");
  const res = await handle(
    new Request(url, {
      method: init.method ?? "GET",
      headers,
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    }),
    call.env,
    call.ctx,
  );
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const message = z.object({ message: z.string() }).safeParse(body);
    return {
      ok: false,
      status: res.status,
      message: message.success ? message.data.message : res.statusText,
    };
  }
  const parsed = schema.safeParse(body);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, status: 502, message: "the API answered in a shape the console does not know" };
}

/**
 * An experiment's results exactly as GET /v1/experiments/:id answers them: the route's own schema
 * (the console sits above the http layer), so the pages and the route cannot disagree on a field.
 */
export type ExperimentView = ExperimentResults;
export type GoalView = ExperimentResults["goals"][number];
export type GoalArmView = GoalView["report"]["arms"][number];
export type DayView = ExperimentResults["daily"][number];

export interface ExperimentSummary {
  readonly id: string;
  readonly goal: string;
  readonly variants: readonly string[];
}

/** The experiments of the active rules, the global holdout apart (it is the programme page's). */
export async function listExperiments(call: ConsoleCall): Promise<ExperimentSummary[]> {
  const rules = await activeRules(call.env, call.ctx);
  const experiments = rules?.compiled.experiments ?? {};
  return Object.entries(experiments)
    .filter(([id]) => id !== GLOBAL_HOLDOUT)
    .map(([id, e]) => ({
      id,
      goal: e.goal,
      variants: e.variants.map((v) => v.id),
    }));
}

export function experimentResults(call: ConsoleCall, id: string): Promise<Fetched<ExperimentView>> {
  return api(call, `/v1/experiments/${encodeURIComponent(id)}`, ExperimentResultsSchema);
}

/** The programme's lift: everyone personalized against the global holdout (404 when none is set). */
export function programmeLift(call: ConsoleCall): Promise<Fetched<ExperimentView>> {
  return experimentResults(call, GLOBAL_HOLDOUT);
}

const EventView = z.looseObject({
  id: z.string(),
  type: z.string(),
  ts: z.number(),
  channel: z.string(),
  props: z.record(z.string(), z.unknown()),
});
const ProfileView = z.looseObject({
  id: z.string(),
  aliases: z.array(z.string()),
  traits: z.record(z.string(), z.unknown()),
  consent: z.record(z.string(), z.unknown()),
  state: z
    .looseObject({
      firstSeen: z.number().nullable(),
      lastSeen: z.number().nullable(),
      sessionCount: z.number(),
      events: z.array(EventView),
      assignments: z.record(z.string(), z.string()),
    })
    .nullable(),
  deadLetters: z.array(z.unknown()),
  failOpen: z.array(z.string()).optional(),
});
export type ProfileView = z.infer<typeof ProfileView>;

const CandidateView = z.looseObject({
  experience: z.string(),
  outcome: z.string(),
  detail: z.string().nullable(),
});
const ExplainView = z.looseObject({
  visitorId: z.string(),
  rulesVersion: z.string().nullable(),
  decisions: z.record(
    z.string(),
    z.looseObject({
      experience: z.string().nullable(),
      variant: z.string().nullable(),
      reason: z.string(),
      content: z.looseObject({ html: z.string().nullable() }),
    }),
  ),
  segments: z.array(z.string()),
  intent: z.looseObject({ top: z.string().nullable(), scores: z.record(z.string(), z.number()) }),
  failOpen: z.array(z.string()),
  explanation: z.record(z.string(), z.array(CandidateView)).optional(),
});
export type ExplainView = z.infer<typeof ExplainView>;

const PreviewView = z.looseObject({ url: z.string() });

export interface PersonView {
  readonly profile: Fetched<ProfileView>;
  readonly explain: Fetched<ExplainView>;
  /** A preview link of the page with this person's decisions forced, or null when there is none. */
  readonly preview: string | null;
}

/** A person: what is held on them, and what `pageUrl` on `channel` would show them, and why. */
export async function person(
  call: ConsoleCall,
  id: string,
  pageUrl: URL,
  channel: string,
): Promise<PersonView> {
  const query = new URLSearchParams({ url: pageUrl.toString(), channel });
  if (id.startsWith("user:")) query.set("userId", id.slice(5));
  else query.set("visitorId", id);
  // The profile first: a decision records the assignments it makes, so explaining an id nothing is
  // held on (a typo) would create a visitor.
  const profile = await api(call, `/v1/profiles/${encodeURIComponent(id)}`, ProfileView);
  if (!profile.ok) {
    return {
      profile,
      explain: { ok: false, status: profile.status, message: "not asked: the profile could not be read" },
      preview: null,
    };
  }
  const explain = await api(call, `/v1/explain?${query}`, ExplainView);
  let preview: string | null = null;
  if (explain.ok && pageUrl.origin === call.url.origin) {
    const forced = Object.fromEntries(
      Object.entries(explain.value.decisions).flatMap(([placement, d]) =>
        d.experience
          ? [[placement, { experience: d.experience, ...(d.variant ? { variant: d.variant } : {}) }]]
          : [],
      ),
    );
    const link = await api(call, "/v1/preview", PreviewView, {
      method: "POST",
      body: { path: pageUrl.pathname + pageUrl.search, forced, explain: true, ttlSeconds: 3600 },
    });
    if (link.ok) preview = link.value.url;
  }
  return { profile, explain, preview };
}

// --- rules: the published history in KV, as the CLI writes it ---

/** The console's KV reads and writes have the admin routes' write deadline (40× STORE_DEADLINE_MS). */
function rulesKv(env: Env): RulesKv {
  const ms = readConfig(env).config.STORE_DEADLINE_MS * 40;
  const failure = (r: { reason: string; error?: string }) => ({
    ok: false as const,
    error: `${r.reason}${r.error ? `: ${r.error}` : ""}`,
  });
  return {
    async get(key) {
      const r = await withDeadline(() => env.RULES.get(key, "json"), ms);
      return r.ok ? { ok: true, value: r.value } : failure(r);
    },
    async put(key, value) {
      const r = await withDeadline(() => env.RULES.put(key, JSON.stringify(value)), ms);
      return r.ok ? { ok: true } : failure(r);
    },
  };
}

export interface RulesView {
  /** What this isolate serves, and from where (`bundled`: the file built into the worker). */
  readonly serving: { version: string; source: string } | null;
  /** Where the worker reads rules from: `file` never reads KV (npm start). */
  readonly rulesSource: "kv" | "file";
  /** The `rules:active` pointer in KV, and every publish, newest first. */
  readonly active: string | null;
  readonly history: ReadonlyArray<{ version: string; publishedAt: string | null }>;
}

export async function rulesOverview(call: ConsoleCall): Promise<Fetched<RulesView>> {
  const loaded = await activeRules(call.env, call.ctx);
  const kv = rulesKv(call.env);
  const [history, active] = await Promise.all([kv.get(HISTORY_KEY), kv.get(ACTIVE_KEY)]);
  if (!history.ok || !active.ok) {
    return { ok: false, status: 503, message: "the rules history could not be read; retry later" };
  }
  const past = HistorySchema.safeParse(history.value ?? []);
  if (!past.success) return { ok: false, status: 500, message: `${HISTORY_KEY} is malformed` };
  const pointer = parsePointer(active.value);
  return {
    ok: true,
    value: {
      serving: loaded ? { version: loaded.version, source: loaded.source } : null,
      rulesSource: readConfig(call.env).config.RULES_SOURCE,
      active: pointer.ok ? pointer.value.version : null,
      history: past.data.map((h) => ({ version: h.version, publishedAt: h.publishedAt ?? null })).reverse(),
    },
  };
}

/** A published version's document, pretty-printed (what the diff compares). */
export async function rulesVersionText(call: ConsoleCall, version: string): Promise<Fetched<string>> {
  const read = await rulesKv(call.env).get(versionKey(version));
  if (!read.ok) return { ok: false, status: 503, message: "the version could not be read; retry later" };
  if (read.value === null) return { ok: false, status: 404, message: `version ${version} is not published` };
  const stored = StoredVersionSchema.safeParse(read.value);
  if (!stored.success) return { ok: false, status: 500, message: `version ${version} is malformed` };
  return { ok: true, value: JSON.stringify(stored.data.doc, null, 2) };
}

/** Moves `rules:active` back to `version`, only if the worker would load it (the CLI's rollback). */
export async function rollbackTo(
  call: ConsoleCall,
  version: string,
): Promise<{ ok: true; from: string | null } | { ok: false; message: string }> {
  const done = await rollbackRules(rulesKv(call.env), version, new Date().toISOString());
  return done.ok ? { ok: true, from: done.from } : done;
}
