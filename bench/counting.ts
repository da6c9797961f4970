/**
 * Calls counted per page, without touching src/: a bench-only entry module in front of the built
 * worker. It imports the bundle's own default export and Durable Object classes and hands them a
 * counting view of their bindings and storage, so every figure is what the real code did in workerd:
 *
 *   doRequests   RPC calls (and fetches) on a VISITOR or EXPERIMENTS stub, from the worker and from
 *                inside objects, plus alarm invocations: each is one billed Durable Object request
 *   rowsWritten  / rowsRead: the SQLite cursors' own rowsWritten / rowsRead, summed over every
 *                `ctx.storage.sql.exec` (what Cloudflare bills SQLite-backed objects by)
 *   kvReads      / kvWrites: get / getWithMetadata / put / delete on every KV binding
 *   queueMessages  messages sent to the EXPORT queue (the page's exposure lines from the worker, the
 *                outbox's from the objects)
 *
 * The bench's Miniflare binds no Queues, so EXPORT is a sink here that encodes each message as the
 * queue's json content type does in the sender's isolate (CPU a deployed worker spends), counts it
 * and keeps nothing: without it every export send threw, was tried three times and logged as
 * dropped (on every returning page), and each object's unsent outbox was re-read on every flush,
 * work production never does. Not counted: Workflows and R2 (not bound), and `ctx.storage`
 * key-value calls (Northstar's objects use SQL only).
 * The counters live in the worker's isolate, which its Durable Objects share in workerd; the
 * entry serves them at COUNTS_PATH, a path the bench alone knows.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const COUNTS_PATH = "/__bench/counts";

export interface CallCounts {
  readonly doRequests: number;
  readonly alarms: number;
  readonly rowsWritten: number;
  readonly rowsRead: number;
  readonly kvReads: number;
  readonly kvWrites: number;
  readonly queueMessages: number;
}

const ENTRY = `import worker, * as built from "./index.js";
const counts = { doRequests: 0, alarms: 0, rowsWritten: 0, rowsRead: 0, kvReads: 0, kvWrites: 0, queueMessages: 0 };
// A cursor's row counts grow as it is consumed; Northstar consumes each before the next exec (SQL
// calls are synchronous), so they are summed one exec later, and when the counts are read.
let pending = [];
function settle() {
  for (const c of pending) { counts.rowsWritten += c.rowsWritten; counts.rowsRead += c.rowsRead; }
  pending = [];
}
// Native objects need their own \`this\`: every method is bound to the target.
function view(target, overrides) {
  return new Proxy(target, { get(t, p) {
    if (Object.hasOwn(overrides, p)) return overrides[p];
    const v = Reflect.get(t, p, t);
    return typeof v === "function" ? v.bind(t) : v;
  } });
}
function stub(s) {
  return new Proxy(s, { get(t, p) {
    const v = Reflect.get(t, p, t);
    if (typeof p !== "string" || p === "then" || typeof v !== "function") return v;
    return (...args) => { counts.doRequests++; return t[p](...args); };
  } });
}
function namespace(ns) {
  return view(ns, {
    get: (...a) => stub(ns.get(...a)),
    ...(typeof ns.getByName === "function" ? { getByName: (...a) => stub(ns.getByName(...a)) } : {}),
  });
}
function kv(ns) {
  const read = (m) => (...a) => { counts.kvReads++; return ns[m](...a); };
  const write = (m) => (...a) => { counts.kvWrites++; return ns[m](...a); };
  return view(ns, { get: read("get"), getWithMetadata: read("getWithMetadata"), put: write("put"), delete: write("delete") });
}
// The EXPORT queue the bench does not bind: each body encoded as the queue's json content type
// encodes it (in the sender's isolate), counted, discarded (see the module comment).
const exportSink = {
  send: async (body) => { JSON.stringify(body); counts.queueMessages++; },
  sendBatch: async (messages) => { for (const m of messages) { JSON.stringify(m.body); counts.queueMessages++; } },
};
// One counting view per env object, as workerd hands the worker the same env on every request:
// a fresh copy per request would defeat every cache the worker keys by its env (its parsed config).
const views = new WeakMap();
function countingEnv(env) {
  let out = views.get(env);
  if (out) return out;
  out = { ...env };
  views.set(env, out);
  if (!env.EXPORT) out.EXPORT = exportSink;
  for (const [k, v] of Object.entries(env)) {
    if (v && typeof v.idFromName === "function") out[k] = namespace(v);
    else if (v && typeof v.getWithMetadata === "function") out[k] = kv(v);
  }
  return out;
}
// The base class insists on the real state object, so its SqlStorage gets a counting exec of its own.
function countSql(ctx) {
  const sql = ctx.storage.sql;
  const exec = sql.exec.bind(sql);
  Object.defineProperty(sql, "exec", { value: (...a) => { settle(); const c = exec(...a); pending.push(c); return c; } });
}
function counted(Base) {
  return class extends Base {
    constructor(ctx, env) { countSql(ctx); super(ctx, countingEnv(env)); }
    alarm(...a) { counts.alarms++; counts.doRequests++; return super.alarm(...a); }
  };
}
export const VisitorDO = counted(built.VisitorDO);
export const ExperimentDO = counted(built.ExperimentDO);
export default {
  ...worker,
  fetch(request, env, ctx) {
    if (new URL(request.url).pathname === ${JSON.stringify(COUNTS_PATH)}) { settle(); return Response.json(counts); }
    return worker.fetch(request, countingEnv(env), ctx);
  },
};
`;

/**
 * The entry of a plain (uncounted) run: the built worker and its objects as they are, except that
 * the EXPORT queue the bench does not bind is a sink that encodes each message as the queue would
 * and keeps nothing (see the module comment: without it every returning page's export send throws
 * and is logged). One env
 * view per env object, as above. No binding is wrapped, nothing is counted.
 */
const SINK_ENTRY = `import worker, * as built from "./index.js";
// Each body encoded as the queue's json content type encodes it, in the sender's isolate; then dropped.
const exportSink = {
  send: async (body) => { JSON.stringify(body); },
  sendBatch: async (messages) => { for (const m of messages) JSON.stringify(m.body); },
};
const views = new WeakMap();
function sinkEnv(env) {
  if (env.EXPORT) return env;
  let out = views.get(env);
  if (!out) { out = { ...env, EXPORT: exportSink }; views.set(env, out); }
  return out;
}
function sunk(Base) {
  return class extends Base { constructor(ctx, env) { super(ctx, sinkEnv(env)); } };
}
export const VisitorDO = sunk(built.VisitorDO);
export const ExperimentDO = sunk(built.ExperimentDO);
export default { ...worker, fetch(request, env, ctx) { return worker.fetch(request, sinkEnv(env), ctx); } };
`;

/** Writes the plain run's entry (EXPORT a sink, nothing counted) beside the built worker; returns its path. */
export function sinkEntry(outdir: string): string {
  const path = join(outdir, "plain.js");
  writeFileSync(path, SINK_ENTRY);
  return path;
}

/** Writes the counting entry beside the built worker and returns its path. */
export function countingEntry(outdir: string): string {
  const path = join(outdir, "counting.js");
  writeFileSync(path, ENTRY);
  return path;
}

export async function readCounts(url: string): Promise<CallCounts> {
  const res = await fetch(`${url}${COUNTS_PATH}`);
  return (await res.json()) as CallCounts;
}

export function countsBetween(before: CallCounts, after: CallCounts): CallCounts {
  return {
    doRequests: after.doRequests - before.doRequests,
    alarms: after.alarms - before.alarms,
    rowsWritten: after.rowsWritten - before.rowsWritten,
    rowsRead: after.rowsRead - before.rowsRead,
    kvReads: after.kvReads - before.kvReads,
    kvWrites: after.kvWrites - before.kvWrites,
    queueMessages: after.queueMessages - before.queueMessages,
  };
}

/** The workerd processes this node process started (Miniflare spawns one per instance). */
export function workerdChildren(): Set<number> {
  const pids = new Set<number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const after = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (stat.includes("(workerd)") && Number(after[1]) === process.pid) pids.add(Number(entry));
    } catch {
      // the process ended while listed
    }
  }
  return pids;
}

/** CPU ms (user + system) a process has used so far, from /proc (Linux; clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const after = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ")"; USER_HZ is 100 on Linux.
  return (Number(after[11]) + Number(after[12])) * 10;
}
