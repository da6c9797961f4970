/**
 * Applies web decisions to a streaming HTML body with the native HTMLRewriter. Handlers never
 * throw (a throw inside a handler truncates the page): each one is a few element API calls on
 * values prepared before the stream starts.
 */

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

function handlerFor(change: WebChange): HTMLRewriterElementContentHandlers {
  const { action, html: content, attribute } = change;
  let applied = false;
  return {
    element(el) {
      // A slot is personalized once, even when the selector matches several elements.
      if (applied && action !== "set_attribute") return;
      applied = true;
      switch (action) {
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
  for (const change of plan.changes) rewriter.on(change.selector, handlerFor(change));
  if (plan.bodyEnd) {
    let injected = false;
    rewriter.on("body", {
      element(el) {
        if (injected) return;
        injected = true;
        el.onEndTag((end) => {
          end.before(plan.bodyEnd, html);
        });
      },
    });
  }
  return rewriter;
}
