import { rateChart, upliftChart, visitorsChart } from "../charts.ts";
import type { ArmView, ExperimentSummary, ExperimentView, Fetched, GoalView } from "../data.ts";
import { type Html, html, num, pct } from "../html.ts";
import { type PageContext, page } from "../layout.ts";

/** The experiments of the active rules, each a link to its results. */
export function experimentsPage(ctx: PageContext, experiments: readonly ExperimentSummary[]): Html {
  return page(
    ctx,
    "Experiments",
    experiments.length === 0
      ? html`<p class="muted">The active rules run no experiment.</p>`
      : html`<table><thead><tr><th>Experiment</th><th>Goal</th><th>Variants</th></tr></thead><tbody>${experiments.map(
          (e) =>
            html`<tr><td><a href="${ctx.base}/experiments/${encodeURIComponent(e.id)}">${e.id}</a></td><td>${e.goal}</td><td>${e.variants.join(", ")}</td></tr>`,
        )}</tbody></table>`,
  );
}

/** One experiment (or the programme's global holdout): a chart per goal, the sample-ratio check, visitors over time. */
export function experimentPage(ctx: PageContext, title: string, result: Fetched<ExperimentView>): Html {
  if (!result.ok) return page(ctx, title, html`<p class="error">${result.message}</p>`);
  const view = result.value;
  const goals: readonly GoalView[] = view.goals ?? [{ goal: view.goal, report: view.report }];
  return page(
    ctx,
    title,
    html`<p class="muted">Rules ${view.rulesVersion ?? "unknown"} · the first arm is the control · intervals are 95%.</p>
${goals.map((g) => goalSection(g))}
${
  view.holdout
    ? html`<h2>Held out of this experiment</h2><p id="holdout">${view.holdout.exposures} visitors, ${view.holdout.conversions} conversions${
        view.holdout.exposures > 0 ? html` (${pct(view.holdout.conversions / view.holdout.exposures)})` : ""
      }.</p>`
    : ""
}
<h2>Visitors over time</h2>
${
  view.daily && view.daily.length > 0
    ? visitorsChart(view.daily, "visitors per day per arm")
    : html`<p class="muted">The results API serves no daily series yet.</p>`
}`,
  );
}

function goalSection(goal: GoalView): Html {
  const report = goal.report;
  const srm = report.sampleRatioMismatch;
  return html`<section class="goal" data-goal="${goal.goal}">
<h2>Goal: ${goal.goal}</h2>
<p>${
    srm.flagged
      ? html`<span class="flag" id="srm">Sample ratio mismatch</span> the arms' visitors do not match their weights (χ² ${num(srm.chiSquare, 2)}, p ${num(srm.pValue, 4)}): the assignment may be broken; do not trust the results.`
      : html`<span class="ok" id="srm">Sample ratio OK</span> (p ${num(srm.pValue, 4)}).`
  } ${report.note}</p>
<h3>Conversion rate per arm</h3>
${rateChart(report, `conversion rate per arm for ${goal.goal}`)}
<h3>Uplift against the control</h3>
${upliftChart(report, `relative uplift per arm for ${goal.goal}`)}
<table class="arms"><thead><tr><th>Arm</th><th>Visitors</th><th>Conversions</th><th>Rate [95%]</th><th>Uplift [95%]</th><th>p</th>${
    report.arms.some((a) => a.valuePerVisitor !== undefined) ? html`<th>Value / visitor</th>` : ""
  }<th>Verdict</th></tr></thead><tbody>${report.arms.map(
    (
      a,
    ) => html`<tr data-arm="${a.id}"><td>${a.id}</td><td class="exposures">${a.exposures}</td><td class="conversions">${a.conversions}</td>
<td>${pct(a.rate)} [${pct(a.interval[0])}, ${pct(a.interval[1])}]</td>
<td>${upliftCell(a)}</td>
<td>${a.uplift ? num(a.uplift.pValue, 4) : "–"}</td>${
      report.arms.some((x) => x.valuePerVisitor !== undefined)
        ? html`<td>${a.valuePerVisitor !== undefined ? num(a.valuePerVisitor, 2) : "–"}${a.valueInterval ? html` [${num(a.valueInterval[0], 2)}, ${num(a.valueInterval[1], 2)}]` : ""}</td>`
        : ""
    }<td>${a.verdict}</td></tr>`,
  )}</tbody></table>
</section>`;
}

/** Relative uplift while the control converts, else absolute in points; with the 95% interval. */
function upliftCell(a: ArmView): Html | string {
  const u = a.uplift;
  if (!u) return "–";
  if (u.relative !== null && u.relativeInterval !== null)
    return html`${pct(u.relative)} [${pct(u.relativeInterval[0])}, ${pct(u.relativeInterval[1])}]`;
  const pts = (v: number) => `${(v * 100).toFixed(1)} pts`;
  return html`${pts(u.absolute)} [${pts(u.absoluteInterval[0])}, ${pts(u.absoluteInterval[1])}]`;
}
