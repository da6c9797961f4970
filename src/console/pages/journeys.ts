import { type Html, html } from "../html.ts";
import type { DeadLetterView, JourneyEntryView } from "../journeys-data.ts";
import { type PageContext, page } from "../layout.ts";

/** The journeys' parts of the console: a person's entries with their step log, cancel, dead letters. */

const time = (ms: number): string => new Date(ms).toISOString();

const cancelHref = (ctx: PageContext, id: string, instance: string): string =>
  `${ctx.base}/person/journeys/cancel?${new URLSearchParams({ id, instance })}`;

/** A person's journeys, newest entry first: where each is, what it sent or not and why, step by step. */
export function journeysSection(
  ctx: PageContext,
  id: string,
  journeys: { ok: true; value: readonly JourneyEntryView[] } | { ok: false; message: string },
): Html {
  if (!journeys.ok) return html`<h2>Journeys</h2><p class="error">Journeys: ${journeys.message}</p>`;
  if (journeys.value.length === 0) return html`<h2>Journeys</h2><p class="muted">In no journey.</p>`;
  const entries = [...journeys.value].sort((a, b) => b.enteredAt - a.enteredAt);
  return html`<h2>Journeys</h2><div id="journeys">${entries.map(
    (j) => html`<section class="journey" data-journey="${j.journey}" data-status="${j.status}">
<h3>${j.journey} <span class="${j.status === "running" ? "ok" : "muted"}">${j.status}</span></h3>
<p>Entered ${time(j.enteredAt)}; ${j.status === "running" ? "at" : "ended at"} step <strong class="step">${j.step}</strong>${
      j.reason ? html` (${j.reason})` : ""
    }. <span class="muted">Instance ${j.instance}</span>${
      j.status === "running"
        ? html` <a class="cancel" href="${cancelHref(ctx, id, j.instance)}">Cancel this journey…</a>`
        : ""
    }</p>
${
  j.messages.length
    ? html`<table class="messages"><thead><tr><th>Step</th><th>Channel</th><th>Outcome</th><th>Reason</th><th>At</th></tr></thead><tbody>${j.messages.map(
        (m) =>
          html`<tr><td>${m.step}</td><td>${m.channel ?? "–"}</td><td>${m.outcome}</td><td>${m.reason || "–"}</td><td>${time(m.at)}</td></tr>`,
      )}</tbody></table>`
    : html`<p class="muted">No message yet.</p>`
}
<details><summary>Step log (${j.log.length})</summary><ol class="timeline">${j.log.map(
      (l) =>
        html`<li><time>${time(l.at)}</time> <strong>${l.step}</strong> ${l.what}${l.detail ? html` — ${l.detail}` : ""}</li>`,
    )}</ol></details></section>`,
  )}</div>`;
}

/** The confirmation before a cancel: a change is always a POST with the session's CSRF token. */
export function cancelConfirmPage(ctx: PageContext, id: string, instance: string): Html {
  return page(
    ctx,
    "Cancel a journey",
    html`<p>Cancel journey entry <code>${instance}</code> of <code>${id}</code>? Nothing more will be sent from it, and its instance is stopped.</p>
<form method="post" action="${ctx.base}/person/journeys/cancel"><input type="hidden" name="csrf" value="${ctx.csrf}">
<input type="hidden" name="id" value="${id}"><input type="hidden" name="instance" value="${instance}">
<button type="submit">Cancel the journey</button> <a href="${ctx.base}/person?${String(new URLSearchParams({ id }))}">Keep it</a></form>`,
  );
}

/** Messages that could not be delivered, newest first, with why. */
export function deadLettersPage(
  ctx: PageContext,
  letters: { ok: true; value: readonly DeadLetterView[] } | { ok: false; message: string },
  limit: number,
): Html {
  if (!letters.ok) return page(ctx, "Dead letters", html`<p class="error">${letters.message}</p>`);
  if (letters.value.length === 0) {
    return page(ctx, "Dead letters", html`<p class="muted">No message has failed delivery.</p>`);
  }
  const person = (visitorId: string | undefined): Html | string =>
    visitorId
      ? html`<a href="${ctx.base}/person?${String(new URLSearchParams({ id: visitorId }))}">${visitorId}</a>`
      : "–";
  return page(
    ctx,
    "Dead letters",
    html`<p class="muted">Messages the destinations did not take, newest first${
      letters.value.length >= limit ? html` (the newest ${limit})` : ""
    }.</p>
<table id="dead-letters"><thead><tr><th>At</th><th>Channel</th><th>Person</th><th>Journey</th><th>Reason</th><th>Attempts</th></tr></thead><tbody>${letters.value.map(
      (l) =>
        html`<tr><td>${time(l.at)}</td><td>${l.message.channel ?? "–"}</td><td>${person(l.message.visitorId)}</td><td>${
          l.message.journey
            ? html`${l.message.journey}${l.message.step ? html` / ${l.message.step}` : ""}`
            : "–"
        }</td><td class="reason">${l.reason}</td><td>${l.attempts}</td></tr>`,
    )}</tbody></table>`,
  );
}
