/**
 * Applies web decisions to a streaming HTML body with the native HTMLRewriter. Handlers never
 * throw (a throw inside a handler truncates the page): each one is a few element API calls on
 * values prepared before the stream starts.
 */

import { attributeRefusal } from "../core/url-policy.ts";
import { log } from "../platform/log.ts";
import type { PageSlot } from "../rules/index.ts";

export type WebAction =
  | "replace_content"
  | "replace_element"
  | "before"
  | "after"
  | "prepend"
  | "append"
  | "remove"
  | "set_attribute";

export interface WebChange {
  readonly selector: string;
  readonly action: WebAction;
  /** Fragment HTML (already rendered and escaped where it interpolates data), or the attribute value. */
  readonly html: string;
  readonly attribute?: string | undefined;
}

const html = { html: true } as const;

function apply(el: Element, change: WebChange): void {
  const { html: content, attribute } = change;
  switch (change.action) {
    case "replace_content":
      el.setInnerContent(content, html);
      return;
    case "replace_element":
      el.replace(content, html);
      return;
    case "before":
      el.before(content, html);
      return;
    case "after":
      el.after(content, html);
      return;
    case "prepend":
      el.prepend(content, html);
      return;
    case "append":
      el.append(content, html);
      return;
    case "remove":
      el.remove();
      return;
    case "set_attribute":
      if (attribute) el.setAttribute(attribute, content);
      return;
  }
}

/**
 * The change as it may be applied: an attribute the URL policy refuses (an event handler, a URL
 * attribute rendered with a `javascript:` or other non-web scheme) is dropped, so the element keeps
 * the origin's value. Run once per change, so a refusal is logged once, not per matching element.
 */
function vetted(change: WebChange | null): WebChange | null {
  if (change?.action !== "set_attribute" || !change.attribute) return change;
  const refusal = attributeRefusal(change.attribute, change.html);
  if (refusal === null) return change;
  // The value may come from the request: log what was refused and why, never the value itself.
  log("warn", "attribute_refused", {
    attribute: change.attribute,
    selector: change.selector,
    reason: refusal,
  });
  return null;
}

/**
 * Applies `change` at the first element the selector matches (every match for set_attribute: a slot
 * is personalized once, even when the selector matches several elements). `change` may be a promise:
 * the stream then flows up to the first match and waits there, and only there, for the decision.
 */
function handlerFor(
  action: WebAction,
  proposed: WebChange | null | Promise<WebChange | null>,
): HTMLRewriterElementContentHandlers {
  // The promise never rejects (decisions fail open), and vetted() never throws.
  const change = proposed instanceof Promise ? proposed.then(vetted) : vetted(proposed);
  // Once the decision is in, the handler applies it synchronously: a handler that returns a
  // promise makes the runtime suspend the stream at the element, even when nothing is left to wait for.
  let decided: { readonly change: WebChange | null } | null = change instanceof Promise ? null : { change };
  if (change instanceof Promise)
    void change.then((c) => {
      decided = { change: c };
    });
  let applied = false;
  return {
    element(el) {
      if (applied && action !== "set_attribute") return;
      applied = true;
      if (decided) {
        if (decided.change) apply(el, decided.change);
        return;
      }
      // The promise never rejects (decisions fail open), so the handler cannot throw.
      return (change as Promise<WebChange | null>).then((c) => {
        if (c) apply(el, c);
      });
    },
  };
}

export interface RewritePlan {
  readonly changes: readonly WebChange[];
  /** Markup appended at the end of `<body>` (the beacon tag, a preview panel). */
  readonly bodyEnd: string;
}

/** Builds the rewriter for one response. Selectors were validated when the rules were compiled. */
export function buildRewriter(plan: RewritePlan): HTMLRewriter {
  const rewriter = new HTMLRewriter();
  for (const change of plan.changes) on(rewriter, change.selector, handlerFor(change.action, change));
  return withBodyEnd(rewriter, plan.bodyEnd);
}

/**
 * The rewriter for a page whose decision is still being made: one deferred handler per slot, each
 * waiting for its own change, so the bytes before the first slot stream at once.
 */
export function buildDeferredRewriter(
  slots: readonly PageSlot[],
  changes: Promise<readonly WebChange[]>,
  bodyEnd: string | Promise<string>,
): HTMLRewriter {
  const rewriter = new HTMLRewriter();
  for (const slot of slots) {
    const change = changes.then(
      (all) => all.find((c) => c.selector === slot.selector && c.action === slot.action) ?? null,
    );
    on(rewriter, slot.selector, handlerFor(slot.action, change));
  }
  return withBodyEnd(rewriter, bodyEnd);
}

/**
 * Registers a handler; a selector the runtime refuses (validation accepts a superset of what
 * HTMLRewriter supports) skips that slot instead of failing the page.
 */
function on(rewriter: HTMLRewriter, selector: string, handler: HTMLRewriterElementContentHandlers): void {
  try {
    rewriter.on(selector, handler);
  } catch (err) {
    log("warn", "selector_refused", { selector, error: String(err) });
  }
}

/**
 * Markup before `</body>`; a promised one is awaited there (the rest of the page has streamed). A
 * string is appended to the body when its start tag is seen, which the runtime writes before the end
 * tag with no call back into JavaScript there (an end-tag handler cost 0.1–0.2 ms of CPU per page
 * against the one-selector rewriter, docs/benchmarks.md); an async handler would make the runtime
 * suspend the stream at `</body>` even when there is nothing to wait for.
 */
function withBodyEnd(rewriter: HTMLRewriter, bodyEnd: string | Promise<string>): HTMLRewriter {
  if (bodyEnd) {
    let injected = false;
    rewriter.on("body", {
      element(el) {
        if (injected) return;
        injected = true;
        if (typeof bodyEnd === "string") {
          el.append(bodyEnd, html);
          return;
        }
        el.onEndTag(async (end) => {
          const markup = await bodyEnd;
          if (markup) end.before(markup, html);
        });
      },
    });
  }
  return rewriter;
}
