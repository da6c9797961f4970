import type { ExperimentView, Fetched } from "../data.ts";
import { type Html, html, num, pct } from "../html.ts";
import { type PageContext, page } from "../layout.ts";
import { goalSection, money, resultsHeader } from "./experiments.ts";

const TITLE = "Programme lift: personalized against the global holdout";

/**
 * What personalization brings: everyone personalized against the global holdout, per goal overall
 * (the experiment page's charts, the holdout as the control) and per ISO week of first exposure.
 */
export function programmePage(ctx: PageContext, result: Fetched<ExperimentView> | "no holdout"): Html {
  if (result === "no holdout")
    return page(
      ctx,
      TITLE,
      html`<p class="muted" id="no-holdout">The active rules set no global holdout, so there is nothing to compare personalization with. Set one in the rules, e.g. <code>"settings": { "globalHoldout": { "fraction": 0.05, "seed": "program-2026", "goal": "purchase" } }</code>: that share of visitors then sees every placement's default (docs/rules.md).</p>`,
    );
  if (!result.ok) return page(ctx, TITLE, html`<p class="error">${result.message}</p>`);
  const view = result.value;
  return page(
    ctx,
    TITLE,
    html`${resultsHeader(view)}
${view.goals.map(
  (goal) => html`${goalSection(goal)}
<h3>${goal.id} per ISO week of first exposure</h3>
${weeklyTable(view, goal.id, goal.value !== null)}`,
)}`,
  );
}

/** One row per week: held out against personalized, and the uplift with its interval. */
function weeklyTable(view: ExperimentView, goalId: string, valued: boolean): Html {
  const rows = view.weekly.flatMap(({ week, goals }) => {
    const report = goals.find((g) => g.id === goalId)?.report;
    const held = report?.arms.find((a) => a.isHoldout);
    const mine = report?.arms.find((a) => !a.isHoldout);
    return held && mine ? [{ week, held, mine }] : [];
  });
  if (rows.length === 0) return html`<p class="muted">No visitor exposed yet.</p>`;
  const uplift = (u: NonNullable<(typeof rows)[number]["mine"]["uplift"]> | null) =>
    !u
      ? "–"
      : u.relative !== null && u.relativeInterval !== null
        ? `${pct(u.relative)} [${pct(u.relativeInterval[0])}, ${pct(u.relativeInterval[1])}]`
        : `${num(u.absolute * 100, 1)} pts [${num(u.absoluteInterval[0] * 100, 1)}, ${num(u.absoluteInterval[1] * 100, 1)}]`;
  return html`<table class="weekly" data-goal="${goalId}"><thead><tr><th>Week</th><th>Held out</th><th>Personalized</th><th>Rate uplift [95%]</th>${
    valued ? html`<th>Value / visitor, held out → personalized</th><th>Value difference [95% Welch]</th>` : ""
  }</tr></thead><tbody>${rows.map(
    (r) => html`<tr data-week="${r.week}"><td>${r.week}</td>
<td>${pct(r.held.rate)} [${pct(r.held.interval[0])}, ${pct(r.held.interval[1])}] · ${r.held.conversions}/${r.held.visitors}</td>
<td>${pct(r.mine.rate)} [${pct(r.mine.interval[0])}, ${pct(r.mine.interval[1])}] · ${r.mine.conversions}/${r.mine.visitors}</td>
<td>${uplift(r.mine.uplift)}</td>${
      valued
        ? html`<td>${money(r.held.value.mean)} → ${money(r.mine.value.mean)}</td><td>${
            r.mine.valueUplift
              ? `${money(r.mine.valueUplift.absolute)} [${money(r.mine.valueUplift.absoluteInterval[0])}, ${money(r.mine.valueUplift.absoluteInterval[1])}]`
              : "–"
          }</td>`
        : ""
    }</tr>`,
  )}</tbody></table>`;
}
