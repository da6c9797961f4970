/**
 * The layers point one way, and no file imports itself round a circle.
 *
 *   node scripts/check-layers.ts [dir]       (default: src)
 *
 * Reads every `.ts` file's imports — `import`, `import type`, `export … from`, `import("…")`, type
 * imports included — and fails (exit 1, each problem named) on:
 *   - a cycle between files (any strongly connected group of two or more, or a file importing itself);
 *   - a cycle between folders (src/<folder>), whatever files make it;
 *   - an import against the layer order in docs/architecture.md.
 * Imports of packages (`zod`, `cloudflare:workers`) and of files outside the tree are not edges.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

/**
 * What each folder may import, besides itself. `platform` is the leaf of Workers plumbing (env,
 * config, log, deadlines, caches, crypto); `core` is the pure engine and imports nothing.
 */
export const LAYERS: Readonly<Record<string, readonly string[]>> = {
  core: [],
  platform: [],
  rules: ["core"],
  state: ["core", "rules", "platform"],
  measure: ["core", "rules", "platform", "state"],
  // Journeys: the Workflow class and the delivery queue's consumers, beside measure (a message's
  // decision counts its person in its experiments, as a page's does).
  journeys: ["core", "rules", "platform", "state", "measure"],
  edge: ["core", "rules", "platform", "state", "measure", "journeys"],
  http: ["core", "rules", "platform", "state", "measure", "journeys", "edge"],
  // The event stream out: the EXPORT queue's consumer, writing R2 files (src/export/).
  export: ["core", "platform", "state"],
  // The console: server-rendered pages over the admin API (it calls the http layer in-process).
  console: ["core", "rules", "platform", "state", "measure", "edge", "http"],
  // The client's types are derived from the worker's schemas; nothing in the worker imports it.
  client: ["core", "rules", "platform", "state", "measure", "journeys", "edge", "http"],
  // src/index.ts: the fetch handler, the Durable Object and Workflow classes; src/queues.ts: queue() routing.
  ".": ["console", "http", "state", "measure", "journeys", "platform", "export"],
};

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

/** The relative imports of one file's text, as written. */
export function importsOf(text: string): string[] {
  // Comments are not code: an example in a JSDoc must not count as an import.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
  const found: string[] = [];
  for (const m of code.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (spec?.startsWith(".")) found.push(spec);
  }
  return found;
}

/** The folder a file belongs to, relative to the tree: `src/http/app.ts` → `http`, `src/index.ts` → `.`. */
export function folderOf(file: string): string {
  const parts = file.split(/[\\/]/);
  return parts.length > 1 ? parts[0]! : ".";
}

export type Graph = ReadonlyMap<string, ReadonlySet<string>>;

/** Strongly connected groups of two or more files, and files importing themselves (Tarjan). */
export function cyclesOf(graph: Graph): string[][] {
  let index = 0;
  const order = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    order.set(node, index);
    low.set(node, index);
    index++;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!order.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) low.set(node, Math.min(low.get(node)!, order.get(next)!));
    }
    if (low.get(node) !== order.get(node)) return;
    const group: string[] = [];
    for (let member = stack.pop(); member !== undefined; member = stack.pop()) {
      onStack.delete(member);
      group.push(member);
      if (member === node) break;
    }
    if (group.length > 1 || graph.get(node)?.has(node)) cycles.push(group.sort());
  };
  for (const node of [...graph.keys()].sort()) if (!order.has(node)) visit(node);
  return cycles;
}

/** Every problem in a tree given as file → text (paths relative to the tree, `/`-separated). */
export function layerProblems(files: ReadonlyMap<string, string>): string[] {
  const fileGraph = new Map<string, Set<string>>();
  const folderGraph = new Map<string, Set<string>>();
  const problems: string[] = [];
  for (const [file, text] of files) {
    const edges = new Set<string>();
    fileGraph.set(file, edges);
    const from = folderOf(file);
    if (!folderGraph.has(from)) folderGraph.set(from, new Set());
    for (const spec of importsOf(text)) {
      const target = relative(".", join(dirname(file), spec))
        .split(sep)
        .join("/");
      if (!files.has(target)) continue; // outside the tree (rules/*.json, a test fixture)
      edges.add(target);
      const to = folderOf(target);
      if (to === from) continue;
      folderGraph.get(from)!.add(to);
      const allowed = LAYERS[from];
      if (!allowed)
        problems.push(`${file}: folder ${from} has no place in the layer order (scripts/check-layers.ts)`);
      else if (!allowed.includes(to))
        problems.push(`${file} imports ${target}: ${from} may not import ${to}`);
    }
  }
  for (const cycle of cyclesOf(fileGraph)) problems.push(`import cycle between files: ${cycle.join(" → ")}`);
  for (const cycle of cyclesOf(folderGraph))
    problems.push(`import cycle between folders: ${cycle.join(" → ")}`);
  return [...new Set(problems)];
}

function readTree(dir: string, base = dir, into = new Map<string, string>()): Map<string, string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) readTree(path, base, into);
    else if (name.endsWith(".ts"))
      into.set(relative(base, path).split(sep).join("/"), readFileSync(path, "utf8"));
  }
  return into;
}

if (import.meta.url === `file://${resolve(process.argv[1] ?? "")}`) {
  const dir = resolve(process.argv[2] ?? "src");
  const problems = layerProblems(readTree(dir));
  if (problems.length) {
    console.error(`${problems.length} layering problem(s) in ${relative(".", dir) || "."}:`);
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
  }
  console.log(`layers: no import cycles, every import points down (${relative(".", dir) || "."})`);
}
