import { barChart, type Difference, differenceChart, signed, visitorsChart } from "../charts.ts";
import type { ExperimentSummary, ExperimentView, Fetched, GoalArmView, GoalView } from "../data.ts";
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

/** One experiment: per goal, rates and values with their intervals; the sample-ratio check; visitors over time. */
export function experimentPage(ctx: PageContext, title: string, result: Fetched<ExperimentView>): Html {
  if (!result.ok) return page(ctx, title, html`<p class="error">${result.message}</p>`);
  const view = result.value;
  return page(
    ctx,
    title,
    html`${resultsHeader(view)}
${view.goals.map((g) => goalSection(g))}
<h2>Visitors over time</h2>
${
  view.daily.length > 0
    ? visitorsChart(view.daily, "visitors first exposed per day, per arm")
    : html`<p class="muted">No visitor exposed yet.</p>`
}`,
  );
}

/** What every results page says first: the rules, missing shards, and the sample-ratio check. */
export function resultsHeader(view: ExperimentView): Html {
  const missing = view.shards.missing;
  const srm = view.goals[0]?.report.sampleRatioMismatch;
  return html`<p class="muted">Rules ${view.rulesVersion ?? "unknown"} · intervals are 95% · uplift is against the control.</p>
${
  missing.length > 0
    ? html`<p class="error" id="shards-missing">${missing.length} of ${view.shards.total} counter shards did not answer in time (${missing.join(", ")}): their visitors are not counted here. Reload to ask again.</p>`
    : ""
}
${
  !srm
    ? ""
    : srm.flagged
      ? html`<p><span class="flag" id="srm">Sample ratio mismatch</span> the arms' visitors do not match their planned shares (χ² ${num(srm.chiSquare, 2)}, p ${num(srm.pValue, 4)}): the assignment may be broken; do not trust the results.</p>`
      : html`<p><span class="ok" id="srm">Sample ratio OK</span> the arms' visitors match their planned shares (p ${num(srm.pValue, 4)}).</p>`
}`;
}

/** Value in the goal's own unit (the rules do not say which currency), to the cent. */
export const money = (v: number): string => v.toFixed(2);
const signedMoney = (v: number): string => `${v > 0 ? "+" : ""}${v.toFixed(2)}`;
const points = (v: number): string => signed(v, " pts");

/** A rate with its interval, each number in a span the tests and readers can find. */
const rateText = (a: GoalArmView): Html =>
  html`<tspan class="rate">${pct(a.rate)}</tspan> [<tspan class="lo">${pct(a.interval[0])}</tspan>, <tspan class="hi">${pct(a.interval[1])}</tspan>] · <tspan class="conversions">${a.conversions}</tspan>/<tspan class="exposures">${a.visitors}</tspan>`;

const valueText = (a: GoalArmView): Html =>
  html`<tspan class="mean">${money(a.value.mean)}</tspan>${
    a.value.interval
      ? html` [<tspan class="lo">${money(a.value.interval[0])}</tspan>, <tspan class="hi">${money(a.value.interval[1])}</tspan>]`
      : ""
  }${a.value.normalApproximationOk ? "" : " · skewed"}`;

/** What a rate uplift and a value uplift have in common. */
interface Comparison {
  readonly absolute: number;
  readonly absoluteInterval: readonly [number, number];
  readonly relative: number | null;
  readonly relativeInterval: readonly [number, number] | null;
  readonly significant: boolean;
}

/**
 * Each arm's difference against the control, all in one unit so they share an axis: relative when
 * every arm has a relative interval (the control converts; for value, both means are positive),
 * else absolute (points of rate, or value per visitor by Welch's interval).
 */
function differences(
  arms: readonly GoalArmView[],
  pick: (a: GoalArmView) => Comparison | null,
  absolute: (v: number) => string,
): Difference[] {
  const rows = arms.flatMap((a) => {
    const u = pick(a);
    return u ? [{ id: a.id, u }] : [];
  });
  const relative = rows.every(({ u }) => u.relative !== null && u.relativeInterval !== null);
  return rows.map(({ id, u }) =>
    relative
      ? { id, value: u.relative!, interval: u.relativeInterval!, significant: u.significant, print: signed }
      : { id, value: u.absolute, interval: u.absoluteInterval, significant: u.significant, print: absolute },
  );
}

/** Charts and numbers of one goal over every arm (variants, holdout; or held out and personalized). */
export function goalSection(goal: GoalView): Html {
  const arms = goal.report.arms;
  const rateUplift = differences(arms, (a) => a.uplift, points);
  const hours = goal.windowMs === null ? null : goal.windowMs / 3_600_000;
  const window =
    hours === null
      ? ""
      : ` within ${hours % 24 === 0 ? `${hours / 24} days` : `${num(hours, 1)} h`} of first exposure`;
  return html`<section class="goal" data-goal="${goal.id}">
<h2>Goal: ${goal.id}${goal.primary ? " (primary)" : ""}</h2>
<p class="muted">A visitor converts on their first <code>${goal.event}</code>${window}${goal.value ? html`; its value is <code>${goal.value}</code>, summed per visitor` : ""}. ${goal.report.note}</p>
<h3>Conversion rate per arm</h3>
${barChart(
  "rates",
  arms.map((a) => ({
    id: a.id,
    isControl: a.isControl,
    value: a.rate,
    interval: a.interval,
    printed: rateText(a),
  })),
  `conversion rate per arm for ${goal.id}`,
  pct,
)}
<h3>Rate uplift against the control</h3>
${differenceChart("rate-uplift", rateUplift, `rate uplift per arm for ${goal.id}`)}
<table class="arms"><thead><tr><th>Arm</th><th>Visitors</th><th>Conversions</th><th>Rate [95%]</th><th>Uplift [95%]</th><th>p</th><th>Verdict</th></tr></thead><tbody>${arms.map(
    (a) => html`<tr data-arm="${a.id}"><td>${a.id}</td><td>${a.visitors}</td><td>${a.conversions}</td>
<td>${pct(a.rate)} [${pct(a.interval[0])}, ${pct(a.interval[1])}]</td>
<td>${upliftText(rateUplift.find((d) => d.id === a.id))}</td><td>${a.uplift ? num(a.uplift.pValue, 4) : "–"}</td><td>${a.verdict}</td></tr>`,
  )}</tbody></table>
${goal.value === null ? "" : valueSection(goal)}
</section>`;
}

function upliftText(d: Difference | undefined): string {
  return d ? `${d.print(d.value)} [${d.print(d.interval[0])}, ${d.print(d.interval[1])}]` : "–";
}

/** Value per visitor, its interval and its uplift, with the method named (docs/decisions.md, record 15). */
function valueSection(goal: GoalView): Html {
  const arms = goal.report.arms;
  return html`<h3>Value per visitor</h3>
<p class="muted" id="value-method-${goal.id}">Every exposed visitor counts, 0 for who did not convert. An arm's mean has a 95% t interval; the difference against the control Welch's t interval (unequal variances, Welch–Satterthwaite degrees of freedom); the relative uplift the delta method on the log ratio of means (docs/decisions.md, record 15). Revenue is skewed: an arm with fewer visitors than Cochran's rule asks (n &gt; 25·skewness²) is marked "skewed", and no difference involving it is called significant.</p>
${barChart(
  "values",
  arms.map((a) => ({
    id: a.id,
    isControl: a.isControl,
    value: a.value.mean,
    interval: a.value.interval,
    printed: valueText(a),
  })),
  `value per visitor per arm for ${goal.id}`,
  money,
)}
<h3>Value uplift against the control</h3>
${differenceChart(
  "value-uplift",
  differences(arms, (a) => a.valueUplift, signedMoney),
  `value uplift per arm for ${goal.id}`,
)}
<table class="values"><thead><tr><th>Arm</th><th>Total value</th><th>Value / visitor [95% t]</th><th>Difference [95% Welch]</th><th>Relative [95% delta method]</th><th>p</th></tr></thead><tbody>${arms.map(
    (a) => html`<tr data-arm="${a.id}"><td>${a.id}</td><td>${money(a.value.total)}</td>
<td>${money(a.value.mean)}${a.value.interval ? ` [${money(a.value.interval[0])}, ${money(a.value.interval[1])}]` : ""}</td>
<td>${a.valueUplift ? `${signedMoney(a.valueUplift.absolute)} [${signedMoney(a.valueUplift.absoluteInterval[0])}, ${signedMoney(a.valueUplift.absoluteInterval[1])}]` : "–"}</td>
<td>${a.valueUplift?.relative != null ? signed(a.valueUplift.relative) : "–"}${a.valueUplift?.relativeInterval ? ` [${signed(a.valueUplift.relativeInterval[0])}, ${signed(a.valueUplift.relativeInterval[1])}]` : ""}</td>
<td>${a.valueUplift ? num(a.valueUplift.pValue, 4) : "–"}</td></tr>`,
  )}</tbody></table>`;
}
