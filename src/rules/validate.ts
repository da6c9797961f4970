import { compileJsonTemplate, compileTemplate } from "../core/templates.ts";
import { attributeRefusal, redirectTarget, urlScheme } from "../core/url-policy.ts";
import { parseDuration } from "./duration.ts";
import { comparator } from "./operators.ts";
import {
  type Condition,
  type Content,
  GLOBAL_HOLDOUT,
  MAJOR_VERSION,
  type Placement,
  type RulesDocument,
  RulesDocumentSchema,
  SCHEMA_ID,
} from "./schema.ts";
import { isSupportedSelector } from "./selector.ts";

/** A problem in a rules document: where (a JSON path) and what is wrong, in words for its author. */
export interface RulesProblem {
  readonly path: string;
  readonly message: string;
}

export type ParseResult = { ok: true; rules: RulesDocument } | { ok: false; errors: RulesProblem[] };

function joinPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const seg of path) out += typeof seg === "number" ? `[${seg}]` : out ? `.${String(seg)}` : String(seg);
  return out || "(document)";
}

/** Walks every condition in a tree, with its path, so reference checks see nested ones too. */
export function eachCondition(cond: Condition, at: string, visit: (c: Condition, at: string) => void): void {
  visit(cond, at);
  if ("all" in cond) {
    for (const [i, c] of cond.all.entries()) eachCondition(c, `${at}.all[${i}]`, visit);
  } else if ("any" in cond) {
    for (const [i, c] of cond.any.entries()) eachCondition(c, `${at}.any[${i}]`, visit);
  } else if ("not" in cond) eachCondition(cond.not, `${at}.not`, visit);
}

/** A template's text before its first placeholder: what the rule's author fixed, whatever the data. */
function literalPrefix(template: string): string {
  const at = template.indexOf("{{");
  return at === -1 ? template : template.slice(0, at);
}

function semanticProblems(doc: RulesDocument): RulesProblem[] {
  const problems: RulesProblem[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  const dims = new Set(Object.keys(doc.dimensions));
  // The schema has checked the form; a zero length would divide by zero or count nothing.
  const positive = (duration: string, path: string) => {
    if (!((parseDuration(duration) ?? 0) > 0)) add(path, `a duration longer than zero, not "${duration}"`);
  };
  for (const [id, d] of Object.entries(doc.dimensions)) positive(d.halfLife, `dimensions.${id}.halfLife`);

  const conditionSites: Array<[Condition, string]> = [];
  for (const [id, c] of Object.entries(doc.conditions)) conditionSites.push([c, `conditions.${id}`]);
  for (const [id, s] of Object.entries(doc.segments))
    conditionSites.push([s.condition, `segments.${id}.condition`]);
  for (const [i, s] of doc.signals.entries()) if (s.when) conditionSites.push([s.when, `signals[${i}].when`]);
  for (const [i, x] of doc.experiences.entries()) {
    if (x.audience) conditionSites.push([x.audience, `experiences[${i}].audience`]);
  }

  for (const [root, rootAt] of conditionSites) {
    eachCondition(root, rootAt, (c, at) => {
      if ("ref" in c && !(c.ref in doc.conditions)) add(`${at}.ref`, `unknown condition "${c.ref}"`);
      if ("segment" in c && !(c.segment in doc.segments))
        add(`${at}.segment`, `unknown segment "${c.segment}"`);
      if ("intent" in c) {
        for (const key of ["dimension", "top"] as const) {
          const d = c.intent[key];
          if (d !== undefined && !dims.has(d)) add(`${at}.intent.${key}`, `unknown dimension "${d}"`);
        }
      }
      if ("experiment" in c && !(c.experiment in doc.experiments))
        add(`${at}.experiment`, `unknown experiment "${c.experiment}"`);
      if ("countWithin" in c && c.countWithin.where) {
        const w = c.countWithin.where;
        if (!w.path.startsWith("event.")) {
          add(`${at}.countWithin.where.path`, "a countWithin filter reads the counted event: event.*");
        }
        const cmp = comparator(w.op, w.value);
        if (typeof cmp === "string") add(`${at}.countWithin.where.value`, cmp);
      }
      if ("countWithin" in c) positive(c.countWithin.window, `${at}.countWithin.window`);
      if ("silence" in c && c.silence.within !== undefined)
        positive(c.silence.within, `${at}.silence.within`);
      if (
        "op" in c &&
        !("countWithin" in c) &&
        c.path.startsWith("event.") &&
        !rootAt.startsWith("signals") &&
        !rootAt.startsWith("conditions")
      ) {
        add(`${at}.path`, "event.* is only defined in signal conditions");
      }
      // A value the operator cannot use would make the condition silently false for everyone.
      if ("op" in c && !("countWithin" in c)) {
        const cmp = comparator(c.op, c.value);
        if (typeof cmp === "string") add(`${at}.value`, cmp);
      }
    });
  }

  // Reference cycles among named conditions and segments would recurse forever at evaluation.
  const refsOf = (c: Condition): string[] => {
    const out: string[] = [];
    eachCondition(c, "", (n) => {
      if ("ref" in n) out.push(`conditions.${n.ref}`);
      if ("segment" in n) out.push(`segments.${n.segment}`);
    });
    return out;
  };
  const graph = new Map<string, string[]>();
  for (const [id, c] of Object.entries(doc.conditions)) graph.set(`conditions.${id}`, refsOf(c));
  for (const [id, s] of Object.entries(doc.segments)) graph.set(`segments.${id}`, refsOf(s.condition));
  const state = new Map<string, 1 | 2>();
  const visit = (node: string, trail: string[]): void => {
    if (state.get(node) === 2) return;
    if (state.get(node) === 1) {
      add(node, `reference cycle: ${[...trail.slice(trail.indexOf(node)), node].join(" → ")}`);
      return;
    }
    state.set(node, 1);
    for (const next of graph.get(node) ?? []) if (graph.has(next)) visit(next, [...trail, node]);
    state.set(node, 2);
  };
  for (const node of graph.keys()) visit(node, []);

  const signalIds = new Set<string>();
  doc.signals.forEach((s, i) => {
    if (signalIds.has(s.id)) add(`signals[${i}].id`, `duplicate signal id "${s.id}"`);
    signalIds.add(s.id);
    for (const d of Object.keys(s.add))
      if (!dims.has(d)) add(`signals[${i}].add.${d}`, `unknown dimension "${d}"`);
  });

  const checkContent = (content: Content | null | undefined, at: string) => {
    if (!content) return;
    if (content.html !== undefined) {
      const t = compileTemplate(content.html, "html");
      if (!t.ok) add(`${at}.html`, t.error);
    }
    for (const key of ["redirect", "attribute"] as const) {
      const v = content[key];
      if (v !== undefined) {
        const t = compileTemplate(v, "text");
        if (!t.ok) add(`${at}.${key}`, t.error);
      }
    }
    if (content.json !== undefined) {
      const j = compileJsonTemplate(content.json);
      if (!j.ok) add(j.path ? `${at}.json.${j.path}` : `${at}.json`, j.error);
    }
  };

  // What a browser would turn against the visitor (src/core/url-policy.ts, the runtime's policy too).
  // The literal text before a template's first placeholder is the author's and fixes the URL's
  // scheme whatever the data; what the placeholders fill in is checked again on every request.
  const redirectHosts = doc.settings.redirectHosts ?? [];
  const checkUrls = (content: Content | null | undefined, placement: Placement | undefined, at: string) => {
    if (!content || !placement) return;
    const name = placement.attribute;
    if (placement.action === "set_attribute" && name && content.attribute !== undefined) {
      const value = content.attribute;
      const literal = literalPrefix(value);
      if (name.toLowerCase() === "style" && literal !== value) {
        add(
          `${at}.attribute`,
          "a style filled from a template lets request or profile data restyle the page (overlays, url() requests to any host): write it literally, or set a class",
        );
      } else if (attributeRefusal(name, literal) === "url_scheme") {
        add(
          `${at}.attribute`,
          `"${literal.slice(0, 200)}" is refused in ${name}: a URL there is http, https, mailto, tel or relative, never javascript:, vbscript: or data:`,
        );
      }
    }
    if (placement.action === "redirect" && content.redirect !== undefined) {
      const value = content.redirect;
      const literal = literalPrefix(value);
      const scheme = urlScheme(literal);
      if (
        literal === value
          ? redirectTarget(value, null, redirectHosts) === null
          : scheme !== null && scheme !== "http" && scheme !== "https"
      ) {
        add(
          `${at}.redirect`,
          `"${value.slice(0, 200)}" is refused: a redirect goes to a path on this site (/landing), or to an http(s) URL whose host is listed in settings.redirectHosts (the site's own host too, when written as a full URL); no backslashes, spaces or other schemes`,
        );
      }
    }
  };

  for (const [id, p] of Object.entries(doc.placements)) {
    const at = `placements.${id}`;
    if (p.selector !== undefined && !isSupportedSelector(p.selector)) {
      add(`${at}.selector`, `"${p.selector}" is not a selector HTMLRewriter supports`);
    }
    if (p.action === "set_attribute" && !p.attribute)
      add(`${at}.attribute`, "set_attribute needs an attribute name");
    const refusal = p.action === "set_attribute" && p.attribute ? attributeRefusal(p.attribute, "") : null;
    if (refusal === "event_handler")
      add(
        `${at}.attribute`,
        `${p.attribute} is an event handler: its value runs as script, so no rule may set it`,
      );
    else if (refusal === "markup")
      add(
        `${at}.attribute`,
        `${p.attribute} holds a whole HTML document: put markup in html content instead`,
      );
    checkContent(p.default, `${at}.default`);
    checkUrls(p.default, p, `${at}.default`);
  }

  for (const [id, e] of Object.entries(doc.experiments)) {
    if (id === GLOBAL_HOLDOUT) add(`experiments.${id}`, "this id is reserved for settings.globalHoldout");
    const total = e.variants.reduce((s, v) => s + v.weight, 0);
    if (Math.abs(total - 100) > 1e-9) add(`experiments.${id}.variants`, `weights sum to ${total}, not 100`);
    const seen = new Set<string>();
    e.variants.forEach((v, i) => {
      if (seen.has(v.id)) add(`experiments.${id}.variants[${i}].id`, `duplicate variant "${v.id}"`);
      seen.add(v.id);
    });
  }

  const experienceIds = new Set<string>();
  const blockedAt = new Map<string, { priority: number; id: string }>();
  doc.experiences.forEach((x, i) => {
    const at = `experiences[${i}]`;
    if (experienceIds.has(x.id)) add(`${at}.id`, `duplicate experience id "${x.id}"`);
    experienceIds.add(x.id);
    const placement = doc.placements[x.placement];
    if (!placement) add(`${at}.placement`, `unknown placement "${x.placement}"`);
    if (x.scoreBy && !dims.has(x.scoreBy)) add(`${at}.scoreBy`, `unknown dimension "${x.scoreBy}"`);
    if (x.experiment) {
      const exp = doc.experiments[x.experiment];
      if (!exp) add(`${at}.experiment`, `unknown experiment "${x.experiment}"`);
      else {
        for (const v of exp.variants) {
          if (!x.variants?.[v.id] && !x.content) add(`${at}.variants`, `no content for variant "${v.id}"`);
        }
        for (const v of Object.keys(x.variants ?? {})) {
          if (!exp.variants.some((ev) => ev.id === v))
            add(`${at}.variants.${v}`, `"${v}" is not a variant of ${x.experiment}`);
        }
      }
    } else if (x.variants) add(`${at}.variants`, "variants need an experiment");
    if (!x.content && !x.variants) add(`${at}.content`, "an experience needs content (or variants)");
    for (const [j, cap] of x.caps.entries()) positive(cap.per, `${at}.caps[${j}].per`);
    for (const [j, s] of x.suppressAfter.entries()) positive(s.within, `${at}.suppressAfter[${j}].within`);
    if (placement?.action === "redirect" && x.content && !x.content.redirect) {
      add(`${at}.content.redirect`, "a redirect placement needs content.redirect");
    }
    checkContent(x.content, `${at}.content`);
    checkUrls(x.content, placement, `${at}.content`);
    for (const [v, c] of Object.entries(x.variants ?? {})) {
      checkContent(c, `${at}.variants.${v}`);
      checkUrls(c, placement, `${at}.variants.${v}`);
    }
    // An experience behind an earlier one that always wins can never show.
    if (placement && placement.pick === "priority") {
      const blocker = blockedAt.get(x.placement);
      if (blocker && blocker.priority >= x.priority) {
        add(at, `unreachable: "${blocker.id}" always wins placement ${x.placement} before it`);
      }
      const always =
        !x.audience && x.caps.length === 0 && x.suppressAfter.length === 0 && !x.experiment && !x.channels;
      if (always && (!blocker || x.priority > blocker.priority))
        blockedAt.set(x.placement, { priority: x.priority, id: x.id });
    }
  });
  return problems;
}

/**
 * The `$schema` values a v1 document may carry: the committed file (what editors resolve in this
 * repository) and the published id. A document without `$schema` is v1 too (docs/rules.md).
 */
const V1_SCHEMA_REFS: ReadonlySet<string> = new Set(["./schema.json", SCHEMA_ID]);

/** Why this worker cannot read a document of this envelope, or null when it is v1. */
function envelopeProblem(json: unknown): RulesProblem | null {
  if (!json || typeof json !== "object" || !("$schema" in json)) return null;
  const ref = (json as { $schema: unknown }).$schema;
  // A non-string is the schema's to report, with the rest of the document's errors.
  if (typeof ref !== "string" || V1_SCHEMA_REFS.has(ref)) return null;
  const major = /\/v(\d+)\.json$/.exec(ref)?.[1];
  return {
    path: "$schema",
    message:
      major !== undefined && Number(major) !== MAJOR_VERSION
        ? `rules schema v${major} is not supported by this worker (v${MAJOR_VERSION}, ${SCHEMA_ID})`
        : `unknown rules schema "${ref.slice(0, 200)}": use "./schema.json" or "${SCHEMA_ID}" (v${MAJOR_VERSION})`,
  };
}

/** Parses and validates a rules document: the envelope, the schema, then the semantic checks. */
export function parseRules(json: unknown): ParseResult {
  const envelope = envelopeProblem(json);
  if (envelope) return { ok: false, errors: [envelope] };
  const parsed = RulesDocumentSchema.safeParse(json);
  if (!parsed.success) {
    return {
      ok: false,
      errors: parsed.error.issues.map((i) => ({ path: joinPath(i.path), message: i.message })),
    };
  }
  const problems = semanticProblems(parsed.data);
  return problems.length ? { ok: false, errors: problems } : { ok: true, rules: parsed.data };
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** SHA-256 of the canonical JSON (sorted keys): the version's content hash and ETag. */
export async function hashRules(doc: RulesDocument): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical(doc)));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
