import { RANKED_ITEM_KEYS } from "../core/ranking.ts";
import { compileJsonTemplate, compileTemplate } from "../core/templates.ts";
import { attributeRefusal, redirectTarget, urlScheme } from "../core/url-policy.ts";
import { parseDuration } from "./duration.ts";
import { layerLayout } from "./layers.ts";
import { comparator } from "./operators.ts";
import {
  type Condition,
  type Content,
  type Experience,
  GLOBAL_HOLDOUT,
  type Goal,
  type Journey,
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

/** Adds a problem at a JSON path. */
type Report = (path: string, message: string) => void;

/** What a schema cannot express: references, cycles, weights, templates, URLs, reachability. */
function semanticProblems(doc: RulesDocument): RulesProblem[] {
  const problems: RulesProblem[] = [];
  const report: Report = (path, message) => problems.push({ path, message });
  for (const [id, dimension] of Object.entries(doc.dimensions))
    requirePositive(dimension.halfLife, `dimensions.${id}.halfLife`, report);
  if (doc.settings.affinity)
    requirePositive(doc.settings.affinity.halfLife, "settings.affinity.halfLife", report);
  for (const [id, list] of Object.entries(doc.lists ?? {})) listProblems(id, list, report);
  for (const [root, rootAt] of conditionRoots(doc))
    eachCondition(root, rootAt, (condition, at) => conditionProblems(doc, condition, at, rootAt, report));
  referenceCycles(doc, report);
  signalProblems(doc, report);
  for (const [id, placement] of Object.entries(doc.placements)) placementProblems(doc, id, placement, report);
  for (const [id, experiment] of Object.entries(doc.experiments)) experimentProblems(id, experiment, report);
  if (doc.settings.globalHoldout)
    goalProblems(doc.settings.globalHoldout.goals, "settings.globalHoldout", report);
  for (const problem of layerLayout(doc).problems) report(problem.path, problem.message);
  experienceProblems(doc, report);
  for (const [id, journey] of Object.entries(doc.journeys)) journeyProblems(doc, id, journey, report);
  return problems;
}

/**
 * A journey walks forward: step names are unique, a branch jumps only to a later step (so no journey
 * loops), a send names placements that exist, a segment trigger names a segment, waits are positive.
 */
function journeyProblems(doc: RulesDocument, id: string, journey: Journey, report: Report): void {
  const at = `journeys.${id}`;
  if ("segment" in journey.trigger && !(journey.trigger.segment in doc.segments))
    report(`${at}.trigger.segment`, `unknown segment "${journey.trigger.segment}"`);
  const indexOf = new Map<string, number>();
  for (const [i, step] of journey.steps.entries()) {
    if (indexOf.has(step.id)) report(`${at}.steps[${i}].id`, `step "${step.id}" is named twice`);
    else indexOf.set(step.id, i);
  }
  for (const [i, step] of journey.steps.entries()) {
    const stepAt = `${at}.steps[${i}]`;
    if ("wait" in step) requirePositive(step.wait, `${stepAt}.wait`, report);
    if ("waitForEvent" in step)
      requirePositive(step.waitForEvent.timeout, `${stepAt}.waitForEvent.timeout`, report);
    if ("branch" in step) {
      for (const key of ["goTo", "otherwise"] as const) {
        const target = step.branch[key];
        if (target === undefined) continue;
        const to = indexOf.get(target);
        if (to === undefined) report(`${stepAt}.branch.${key}`, `unknown step "${target}"`);
        else if (to <= i)
          report(`${stepAt}.branch.${key}`, `"${target}" is not a later step: journeys never loop`);
      }
    }
    if ("send" in step) {
      const seen = new Set<string>();
      for (const [j, target] of step.send.via.entries()) {
        if (!Object.hasOwn(doc.placements, target.placement))
          report(`${stepAt}.send.via[${j}].placement`, `unknown placement "${target.placement}"`);
        if (seen.has(target.channel))
          report(`${stepAt}.send.via[${j}].channel`, `${target.channel} is listed twice`);
        seen.add(target.channel);
      }
    }
  }
  if (journey.reentry !== "never") requirePositive(journey.reentry.after, `${at}.reentry.after`, report);
}

/** The schema has checked the form; a zero length would divide by zero or count nothing. */
function requirePositive(duration: string, path: string, report: Report): void {
  if (!((parseDuration(duration) ?? 0) > 0)) report(path, `a duration longer than zero, not "${duration}"`);
}

const DAY_MS = 86400e3;

/**
 * A countWithin or rate reads the event log, which keeps settings.historyDays of events: a longer window
 * would count nothing before that and read a customer active two months ago as silent. (The other
 * windows read per-type last times the visitor's state keeps however old they are.)
 */
function withinHistory(window: string, historyDays: number, path: string, report: Report): void {
  if ((parseDuration(window) ?? 0) > historyDays * DAY_MS)
    report(
      path,
      `"${window}" reaches back further than the ${historyDays} days of history kept (settings.historyDays): events before that are gone and would not count`,
    );
}

/** A campaign's dates: each a time, and the end after the start. */
function campaignDateProblems(
  dates: { readonly startAt?: string | undefined; readonly endAt?: string | undefined },
  at: string,
  report: Report,
): void {
  if (dates.startAt === undefined || dates.endAt === undefined) return;
  if (Date.parse(dates.endAt) <= Date.parse(dates.startAt))
    report(`${at}.endAt`, `ends at ${dates.endAt}, not after it starts at ${dates.startAt}`);
}

/** Every condition tree in the document, with its JSON path. */
export function conditionRoots(doc: RulesDocument): Array<[Condition, string]> {
  const roots: Array<[Condition, string]> = [];
  for (const [id, condition] of Object.entries(doc.conditions)) roots.push([condition, `conditions.${id}`]);
  for (const [id, segment] of Object.entries(doc.segments))
    roots.push([segment.condition, `segments.${id}.condition`]);
  for (const [i, signal] of doc.signals.entries())
    if (signal.when) roots.push([signal.when, `signals[${i}].when`]);
  for (const [i, experience] of doc.experiences.entries()) {
    if (experience.audience) roots.push([experience.audience, `experiences[${i}].audience`]);
  }
  for (const [id, journey] of Object.entries(doc.journeys)) {
    const at = `journeys.${id}`;
    if ("where" in journey.trigger && journey.trigger.where)
      roots.push([journey.trigger.where, `${at}.trigger.where`]);
    if ("condition" in journey.trigger) roots.push([journey.trigger.condition, `${at}.trigger.condition`]);
    if (journey.exitOn.condition) roots.push([journey.exitOn.condition, `${at}.exitOn.condition`]);
    for (const [i, step] of journey.steps.entries())
      if ("branch" in step) roots.push([step.branch.if, `${at}.steps[${i}].branch.if`]);
  }
  for (const [id, list] of Object.entries(doc.lists ?? {}))
    for (const [i, item] of list.items.entries())
      if (item.audience) roots.push([item.audience, `lists.${id}.items[${i}].audience`]);
  return roots;
}

/** One condition: what it names exists, its durations are positive, its operator can use its value. */
function conditionProblems(
  doc: RulesDocument,
  condition: Condition,
  at: string,
  rootAt: string,
  report: Report,
): void {
  if ("ref" in condition && !(condition.ref in doc.conditions))
    report(`${at}.ref`, `unknown condition "${condition.ref}"`);
  if ("segment" in condition && !(condition.segment in doc.segments))
    report(`${at}.segment`, `unknown segment "${condition.segment}"`);
  if ("intent" in condition) {
    for (const key of ["dimension", "top"] as const) {
      const dimension = condition.intent[key];
      if (dimension !== undefined && !Object.hasOwn(doc.dimensions, dimension))
        report(`${at}.intent.${key}`, `unknown dimension "${dimension}"`);
    }
  }
  if ("experiment" in condition && !(condition.experiment in doc.experiments))
    report(`${at}.experiment`, `unknown experiment "${condition.experiment}"`);
  if ("countWithin" in condition && condition.countWithin.where) {
    const where = condition.countWithin.where;
    if (!where.path.startsWith("event.")) {
      report(`${at}.countWithin.where.path`, "a countWithin filter reads the counted event: event.*");
    }
    const compare = comparator(where.op, where.value);
    if (typeof compare === "string") report(`${at}.countWithin.where.value`, compare);
  }
  if ("countWithin" in condition) {
    requirePositive(condition.countWithin.window, `${at}.countWithin.window`, report);
    withinHistory(condition.countWithin.window, doc.settings.historyDays, `${at}.countWithin.window`, report);
  }
  if ("rate" in condition) {
    requirePositive(condition.rate.within, `${at}.rate.within`, report);
    withinHistory(condition.rate.within, doc.settings.historyDays, `${at}.rate.within`, report);
    // With no bound every rate would match: the author meant one and left it out.
    const { gte, gt, lte, lt } = condition.rate;
    if (gte === undefined && gt === undefined && lte === undefined && lt === undefined)
      report(`${at}.rate`, "a rate needs a bound: gte, gt, lte or lt");
  }
  if ("silence" in condition && condition.silence.within !== undefined)
    requirePositive(condition.silence.within, `${at}.silence.within`, report);
  if ("op" in condition && !("countWithin" in condition)) {
    if (
      condition.path.startsWith("event.") &&
      !rootAt.startsWith("signals") &&
      !rootAt.startsWith("conditions") &&
      !/^journeys\.[^.]+\.trigger\.where/.test(rootAt)
    )
      report(`${at}.path`, "event.* is only defined in signal conditions");
    // A value the operator cannot use would make the condition silently false for everyone.
    const compare = comparator(condition.op, condition.value);
    if (typeof compare === "string") report(`${at}.value`, compare);
  }
}

/** Reference cycles among named conditions and segments would recurse forever at evaluation. */
function referenceCycles(doc: RulesDocument, report: Report): void {
  const referencesOf = (condition: Condition): string[] => {
    const references: string[] = [];
    eachCondition(condition, "", (node) => {
      if ("ref" in node) references.push(`conditions.${node.ref}`);
      if ("segment" in node) references.push(`segments.${node.segment}`);
    });
    return references;
  };
  const graph = new Map<string, string[]>();
  for (const [id, condition] of Object.entries(doc.conditions))
    graph.set(`conditions.${id}`, referencesOf(condition));
  for (const [id, segment] of Object.entries(doc.segments))
    graph.set(`segments.${id}`, referencesOf(segment.condition));
  const VISITING = 1;
  const DONE = 2;
  const progress = new Map<string, typeof VISITING | typeof DONE>();
  const visit = (node: string, trail: string[]): void => {
    if (progress.get(node) === DONE) return;
    if (progress.get(node) === VISITING) {
      report(node, `reference cycle: ${[...trail.slice(trail.indexOf(node)), node].join(" → ")}`);
      return;
    }
    progress.set(node, VISITING);
    for (const next of graph.get(node) ?? []) if (graph.has(next)) visit(next, [...trail, node]);
    progress.set(node, DONE);
  };
  for (const node of graph.keys()) visit(node, []);
}

function signalProblems(doc: RulesDocument, report: Report): void {
  const signalIds = new Set<string>();
  doc.signals.forEach((signal, i) => {
    if (signalIds.has(signal.id)) report(`signals[${i}].id`, `duplicate signal id "${signal.id}"`);
    signalIds.add(signal.id);
    for (const dimension of Object.keys(signal.add))
      if (!Object.hasOwn(doc.dimensions, dimension))
        report(`signals[${i}].add.${dimension}`, `unknown dimension "${dimension}"`);
  });
}

function placementProblems(doc: RulesDocument, id: string, placement: Placement, report: Report): void {
  const at = `placements.${id}`;
  if (placement.selector !== undefined && !isSupportedSelector(placement.selector)) {
    report(`${at}.selector`, `"${placement.selector}" is not a selector HTMLRewriter supports`);
  }
  if (placement.action === "set_attribute" && !placement.attribute)
    report(`${at}.attribute`, "set_attribute needs an attribute name");
  const refusal =
    placement.action === "set_attribute" && placement.attribute
      ? attributeRefusal(placement.attribute, "")
      : null;
  if (refusal === "event_handler")
    report(
      `${at}.attribute`,
      `${placement.attribute} is an event handler: its value runs as script, so no rule may set it`,
    );
  else if (refusal === "markup")
    report(
      `${at}.attribute`,
      `${placement.attribute} holds a whole HTML document: put markup in html content instead`,
    );
  contentProblems(doc, placement.default, placement, `${at}.default`, report);
}

function experimentProblems(
  id: string,
  experiment: RulesDocument["experiments"][string],
  report: Report,
): void {
  if (id === GLOBAL_HOLDOUT) report(`experiments.${id}`, "this id is reserved for settings.globalHoldout");
  campaignDateProblems(experiment, `experiments.${id}`, report);
  const total = experiment.variants.reduce((sum, variant) => sum + variant.weight, 0);
  if (Math.abs(total - 100) > 1e-9) report(`experiments.${id}.variants`, `weights sum to ${total}, not 100`);
  const seen = new Set<string>();
  experiment.variants.forEach((variant, i) => {
    if (seen.has(variant.id))
      report(`experiments.${id}.variants[${i}].id`, `duplicate variant "${variant.id}"`);
    seen.add(variant.id);
  });
  goalProblems(experiment.goals, `experiments.${id}`, report);
}

/** Goal ids name the results: each once; a window counts something only when longer than zero. */
function goalProblems(goals: readonly Goal[] | undefined, at: string, report: Report): void {
  const seen = new Set<string>();
  goals?.forEach((goal, i) => {
    if (seen.has(goal.id)) report(`${at}.goals[${i}].id`, `duplicate goal "${goal.id}"`);
    seen.add(goal.id);
    if (goal.window !== undefined) requirePositive(goal.window, `${at}.goals[${i}].window`, report);
  });
}

function experienceProblems(doc: RulesDocument, report: Report): void {
  const experienceIds = new Set<string>();
  // Per placement under pick=priority: the experience that always wins, and its priority.
  const alwaysWins = new Map<string, { priority: number; id: string }>();
  doc.experiences.forEach((experience, i) => {
    const at = `experiences[${i}]`;
    if (experienceIds.has(experience.id)) report(`${at}.id`, `duplicate experience id "${experience.id}"`);
    experienceIds.add(experience.id);
    const placement = doc.placements[experience.placement];
    if (!placement) report(`${at}.placement`, `unknown placement "${experience.placement}"`);
    if (experience.scoreBy && !Object.hasOwn(doc.dimensions, experience.scoreBy))
      report(`${at}.scoreBy`, `unknown dimension "${experience.scoreBy}"`);
    variantProblems(doc, experience, at, report);
    campaignDateProblems(experience, at, report);
    if (!experience.content && !experience.variants)
      report(`${at}.content`, "an experience needs content (or variants)");
    for (const [j, cap] of experience.caps.entries())
      requirePositive(cap.per, `${at}.caps[${j}].per`, report);
    for (const [j, after] of experience.suppressAfter.entries())
      requirePositive(after.within, `${at}.suppressAfter[${j}].within`, report);
    if (placement?.action === "redirect" && experience.content && !experience.content.redirect) {
      report(`${at}.content.redirect`, "a redirect placement needs content.redirect");
    }
    contentProblems(doc, experience.content, placement, `${at}.content`, report);
    for (const [variant, content] of Object.entries(experience.variants ?? {}))
      contentProblems(doc, content, placement, `${at}.variants.${variant}`, report);
    if (placement && placement.pick === "priority") reachability(experience, at, alwaysWins, report);
  });
}

/** An experiment's variants each have content, and the experience names no variant it lacks. */
function variantProblems(doc: RulesDocument, experience: Experience, at: string, report: Report): void {
  if (!experience.experiment) {
    if (experience.variants) report(`${at}.variants`, "variants need an experiment");
    return;
  }
  const experiment = doc.experiments[experience.experiment];
  if (!experiment) {
    report(`${at}.experiment`, `unknown experiment "${experience.experiment}"`);
    return;
  }
  for (const variant of experiment.variants) {
    if (!experience.variants?.[variant.id] && !experience.content)
      report(`${at}.variants`, `no content for variant "${variant.id}"`);
  }
  for (const variant of Object.keys(experience.variants ?? {})) {
    if (!experiment.variants.some((declared) => declared.id === variant))
      report(`${at}.variants.${variant}`, `"${variant}" is not a variant of ${experience.experiment}`);
  }
}

/** An experience behind an earlier one that always wins can never show. */
function reachability(
  experience: Experience,
  at: string,
  alwaysWins: Map<string, { priority: number; id: string }>,
  report: Report,
): void {
  const blocker = alwaysWins.get(experience.placement);
  if (blocker && blocker.priority >= experience.priority) {
    report(at, `unreachable: "${blocker.id}" always wins placement ${experience.placement} before it`);
  }
  const always =
    !experience.audience &&
    experience.caps.length === 0 &&
    experience.suppressAfter.length === 0 &&
    !experience.experiment &&
    !experience.channels &&
    // A dated campaign has ended, or not begun, for part of the time: what follows shows then.
    experience.startAt === undefined &&
    experience.endAt === undefined;
  if (always && (!blocker || experience.priority > blocker.priority))
    alwaysWins.set(experience.placement, { priority: experience.priority, id: experience.id });
}

/** A field name a template can read as `{{ item.<name> }}`. */
const ITEM_FIELD = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const RESERVED_ITEM_KEYS: ReadonlySet<string> = new Set<string>(RANKED_ITEM_KEYS);

/** A ranked list's items: distinct ids, and fields a template can name without clashing. */
function listProblems(id: string, list: NonNullable<RulesDocument["lists"]>[string], report: Report): void {
  const seen = new Set<string>();
  for (const [i, item] of list.items.entries()) {
    const at = `lists.${id}.items[${i}]`;
    if (seen.has(item.id)) report(`${at}.id`, `duplicate item id "${item.id}"`);
    seen.add(item.id);
    for (const key of Object.keys(item)) {
      if (key === "rank" || key === "score")
        report(`${at}.${key}`, `"${key}" is filled in by the ranking: name the field otherwise`);
      else if (
        !RESERVED_ITEM_KEYS.has(key) &&
        (!ITEM_FIELD.test(key) || key in Object.prototype || key === "prototype")
      )
        report(
          `${at}.${key}`,
          "a field name is letters, digits, - and _ (not starting with a digit), so a template can read it as {{ item.name }}",
        );
    }
  }
}

/** A piece of content: its templates compile, its list exists, and its URLs obey the URL policy. */
function contentProblems(
  doc: RulesDocument,
  content: Content | null | undefined,
  placement: Placement | undefined,
  at: string,
  report: Report,
): void {
  templateProblems(content, at, report);
  if (content?.items && !Object.hasOwn(doc.lists ?? {}, content.items.from))
    report(`${at}.items.from`, `unknown list "${content.items.from}"`);
  urlProblems(content, placement, at, doc.settings.redirectHosts ?? [], report);
}

function templateProblems(content: Content | null | undefined, at: string, report: Report): void {
  if (!content) return;
  if (content.html !== undefined) {
    const compiled = compileTemplate(content.html, "html");
    if (!compiled.ok) report(`${at}.html`, compiled.error);
  }
  for (const key of ["redirect", "attribute"] as const) {
    const source = content[key];
    if (source !== undefined) {
      const compiled = compileTemplate(source, "text");
      if (!compiled.ok) report(`${at}.${key}`, compiled.error);
    }
  }
  if (content.json !== undefined) {
    const compiled = compileJsonTemplate(content.json);
    if (!compiled.ok) report(compiled.path ? `${at}.json.${compiled.path}` : `${at}.json`, compiled.error);
  }
}

/**
 * What a browser would turn against the visitor (src/core/url-policy.ts, the runtime's policy too).
 * The literal text before a template's first placeholder is the author's and fixes the URL's
 * scheme whatever the data; what the placeholders fill in is checked again on every request.
 */
function urlProblems(
  content: Content | null | undefined,
  placement: Placement | undefined,
  at: string,
  redirectHosts: readonly string[],
  report: Report,
): void {
  if (!content || !placement) return;
  const name = placement.attribute;
  if (placement.action === "set_attribute" && name && content.attribute !== undefined) {
    const value = content.attribute;
    const literal = literalPrefix(value);
    if (name.toLowerCase() === "style" && literal !== value) {
      report(
        `${at}.attribute`,
        "a style filled from a template lets request or profile data restyle the page (overlays, url() requests to any host): write it literally, or set a class",
      );
    } else if (attributeRefusal(name, literal) === "url_scheme") {
      report(
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
      report(
        `${at}.redirect`,
        `"${value.slice(0, 200)}" is refused: a redirect goes to a path on this site (/landing), or to an http(s) URL whose host is listed in settings.redirectHosts (the site's own host too, when written as a full URL); no backslashes, spaces or other schemes`,
      );
    }
  }
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
export function hashRules(doc: RulesDocument): Promise<string> {
  return hashCanonicalJson(doc);
}

/**
 * The same hash over any JSON value. The loader checks a stored version with it over the document
 * exactly as it was written, before today's schema fills in defaults that did not exist when it was
 * published: a new default must never make a published version unreadable.
 */
export async function hashCanonicalJson(value: unknown): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical(value)));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
