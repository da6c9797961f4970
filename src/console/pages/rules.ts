import type { Fetched, RulesView } from "../data.ts";
import type { Hunk } from "../diff.ts";
import { type Html, html } from "../html.ts";
import { type PageContext, page } from "../layout.ts";

/** Active version, history, a form to diff two versions, and a rollback link per older version. */
export function rulesPage(ctx: PageContext, overview: Fetched<RulesView>, notice: string | null): Html {
  if (!overview.ok) return page(ctx, "Rules", html`<p class="error">${overview.message}</p>`);
  const r = overview.value;
  const versions = r.history.map((h) => h.version);
  return page(
    ctx,
    "Rules",
    html`${notice ? html`<p class="ok" id="notice">${notice}</p>` : ""}
<p>Serving <strong id="serving">${r.serving?.version ?? "nothing"}</strong>${r.serving ? html` (from ${r.serving.source === "kv" ? "published versions" : "the rules built into the worker"})` : ""}.
Published active version: <strong id="active">${r.active ?? "none"}</strong>.</p>
${r.rulesSource === "file" ? html`<p class="muted">This worker serves its rules file (RULES_SOURCE=file): published versions and rollbacks below do not change what it serves.</p>` : ""}
<h2>History</h2>
${
  versions.length === 0
    ? html`<p class="muted">Nothing published yet (<code>npm run rules -- publish</code>).</p>`
    : html`<table id="history"><thead><tr><th>Version</th><th>Published</th><th></th></tr></thead><tbody>${r.history.map(
        (
          h,
        ) => html`<tr data-version="${h.version}"><td>${h.version}${h.version === r.active ? html` <span class="ok">active</span>` : ""}</td><td>${h.publishedAt ?? ""}</td>
<td>${h.version === r.active ? "" : html`<a href="${ctx.base}/rules/rollback?to=${encodeURIComponent(h.version)}">Roll back to this version…</a>`}</td></tr>`,
      )}</tbody></table>
<h2>Compare two versions</h2>
<form method="get" action="${ctx.base}/rules/diff">
<label>From <select name="from">${versions.map((v, i) => html`<option${i === 1 ? " selected" : ""}>${v}</option>`)}</select></label>
<label>To <select name="to">${versions.map((v, i) => html`<option${i === 0 ? " selected" : ""}>${v}</option>`)}</select></label>
<button type="submit">Show the differences</button></form>`
}`,
  );
}

/** The line diff of two versions' pretty-printed JSON. */
export function diffPage(ctx: PageContext, from: string, to: string, hunks: Fetched<readonly Hunk[]>): Html {
  const title = `Rules ${from} → ${to}`;
  if (!hunks.ok) return page(ctx, title, html`<p class="error">${hunks.message}</p>`);
  return page(
    ctx,
    title,
    hunks.value.length === 0
      ? html`<p class="muted">The two versions have the same content.</p>`
      : html`<pre class="diff" id="diff">${hunks.value.map(
          (h) =>
            html`<span class="hunk">@@ line ${h.start} @@</span>${h.lines.map(
              (l) =>
                html`<span class="${l.kind === "+" ? "add" : l.kind === "-" ? "del" : "same"}">${l.kind} ${l.text}</span>${l.kind === " " ? "\n" : ""}`,
            )}`,
        )}</pre>
<p><a href="${ctx.base}/rules">Back to the rules</a></p>`,
  );
}

/** The confirmation a rollback needs: a POST with the session's CSRF token. */
export function rollbackConfirmPage(ctx: PageContext, to: string, active: string | null): Html {
  return page(
    ctx,
    "Roll back the rules?",
    html`<p>Every edge will serve <strong>${to}</strong> instead of <strong>${active ?? "the current rules"}</strong> within seconds. Published versions are not changed; you can roll forward the same way.</p>
<form method="post" action="${ctx.base}/rules/rollback"><input type="hidden" name="csrf" value="${ctx.csrf}"><input type="hidden" name="to" value="${to}">
<button type="submit" id="confirm-rollback">Roll back to ${to}</button> <a href="${ctx.base}/rules">Cancel</a></form>`,
  );
}
