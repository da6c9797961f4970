import { barList } from "../charts.ts";
import type { PersonView } from "../data.ts";
import { type Html, html } from "../html.ts";
import { type PageContext, page } from "../layout.ts";

export interface PersonQuery {
  readonly id: string;
  readonly url: string;
  readonly channel: string;
}

const CHANNELS = ["web", "app", "email", "sms", "push", "kiosk"];

function lookupForm(ctx: PageContext, q: PersonQuery | null, defaultUrl: string): Html {
  return html`<form method="get" action="${ctx.base}/person" class="lookup">
<label>Person <input name="id" required value="${q?.id ?? ""}" placeholder="visitor id, u_… or user:crm-42" size="40"></label>
<label>Page <input name="url" value="${q?.url ?? defaultUrl}" size="50"></label>
<label>Channel <select name="channel">${CHANNELS.map(
    (c) => html`<option${c === (q?.channel ?? "web") ? " selected" : ""}>${c}</option>`,
  )}</select></label>
<button type="submit">Look up</button></form>`;
}

const time = (ms: number | null | undefined): string => (ms ? new Date(ms).toISOString() : "–");

/** A person: what is held on them and what the page would show them, and why. */
export function personPage(
  ctx: PageContext,
  q: PersonQuery | null,
  view: PersonView | null,
  defaultUrl: string,
  problem: string | null = null,
  /** The person's journeys (pages/journeys.ts), drawn after what is held on them. */
  journeys: Html | null = null,
): Html {
  const form = lookupForm(ctx, q, defaultUrl);
  if (problem) return page(ctx, "Person", html`${form}<p class="error">${problem}</p>`);
  if (!q || !view) return page(ctx, "Person", form);
  const { profile, explain } = view;
  const p = profile.ok ? profile.value : null;
  const e = explain.ok ? explain.value : null;
  return page(
    ctx,
    "Person",
    html`${form}
${profile.ok ? "" : html`<p class="error">Profile: ${profile.message}</p>`}
${
  p
    ? html`<p>Id <code id="person-id">${p.id}</code>${p.aliases.length ? html`, also ${p.aliases.join(", ")}` : ""}.
First seen ${time(p.state?.firstSeen)}, last seen ${time(p.state?.lastSeen)}, ${p.state?.sessionCount ?? 0} sessions.</p>
${p.failOpen?.length ? html`<p class="error">Some stores did not answer: ${p.failOpen.join(", ")}.</p>` : ""}
<h2>Traits</h2>${keyValues(p.traits)}
<h2>Consent</h2>${keyValues(p.consent)}
<h2>Experiments</h2>${keyValues(p.state?.assignments ?? {})}
${journeys}`
    : ""
}
${
  e
    ? html`<h2>Segments</h2><p id="segments">${e.segments.length ? e.segments.join(", ") : html`<span class="muted">none</span>`}</p>
<h2>Intent scores</h2>${barList(e.intent.scores, "intent scores, decayed to now")}
${p?.state ? html`<h2>Affinities</h2>${barList(affinities(p.state.events), "categories of the events kept")}` : ""}
<h2>What ${q.url} on ${q.channel} would show them</h2>
${view.preview ? html`<p><a id="preview-link" href="${view.preview}">Preview this page as they would see it</a> (a signed link, valid one hour).</p>` : ""}
<table id="explanation"><thead><tr><th>Placement</th><th>Shows</th><th>Why</th><th>Candidates</th></tr></thead><tbody>${Object.entries(
        e.decisions,
      ).map(
        ([placement, d]) => html`<tr data-placement="${placement}"><td>${placement}</td>
<td class="experience">${d.experience ?? "default"}${d.variant ? html` <span class="variant">(${d.variant})</span>` : ""}${
          d.content.html ? html`<br><q class="content">${textOf(d.content.html)}</q>` : ""
        }</td><td class="reason">${d.reason}</td>
<td><ul>${(e.explanation?.[placement] ?? []).map(
          (c) => html`<li>${c.experience}: ${c.outcome}${c.detail ? html` — ${c.detail}` : ""}</li>`,
        )}</ul></td></tr>`,
      )}</tbody></table>`
    : html`<p class="error">Explanation: ${explain.ok ? "" : explain.message}</p>`
}
${
  p?.state
    ? html`<h2>Events</h2>${
        p.state.events.length === 0
          ? html`<p class="muted">No events kept.</p>`
          : html`<ol class="timeline" id="timeline" reversed>${[...p.state.events]
              .reverse()
              .map(
                (ev) =>
                  html`<li><time>${time(ev.ts)}</time> <strong>${ev.type}</strong> on ${ev.channel} ${props(ev.props)}</li>`,
              )}</ol>`
      }`
    : ""
}
${p && p.deadLetters.length > 0 ? html`<h2>Dead letters</h2><pre>${JSON.stringify(p.deadLetters, null, 2)}</pre>` : ""}`,
  );
}

function keyValues(record: Readonly<Record<string, unknown>>): Html {
  const entries = Object.entries(record);
  if (entries.length === 0) return html`<p class="muted">None.</p>`;
  return html`<table><tbody>${entries.map(
    ([k, v]) => html`<tr><th>${k}</th><td>${typeof v === "string" ? v : JSON.stringify(v)}</td></tr>`,
  )}</tbody></table>`;
}

function props(p: Readonly<Record<string, unknown>>): Html {
  const shown = Object.entries(p).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return shown.length
    ? html`<span class="muted">${shown.map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ")}</span>`
    : html``;
}

/** How often each category appears in the events kept: the person's affinities, as the rules see them. */
function affinities(
  events: ReadonlyArray<{ props: Readonly<Record<string, unknown>> }>,
): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of events) {
    const category = e.props.category;
    if (typeof category === "string" && category) counts[category] = (counts[category] ?? 0) + 1;
  }
  return counts;
}

/** The words of an experience's HTML, for the page to quote (written escaped, like every value). */
function textOf(markup: string): string {
  return markup
    .replace(/<[^>]*>/g, " ")
    .replace(
      /&(amp|lt|gt|quot|#39);/g,
      (_, e: string) => ({ amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'" })[e] ?? "",
    )
    .replace(/\s+/g, " ")
    .trim();
}
