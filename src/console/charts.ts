import type { DayView, ReportView } from "./data.ts";
import { type Html, html, num, pct } from "./html.ts";

/**
 * Hand-made SVG charts: bars with 95% interval whiskers, and lines. No script, no style attribute
 * (the CSP allows neither): colours come from classes in console.css. Each arm's numbers are
 * printed beside its bar, as the API gave them.
 */

const WIDTH = 640;
const LABEL = 150;
const ROW = 34;
const PLOT = WIDTH - LABEL - 190;

/** x of `v` on a [lo, hi] axis over the plot area. */
const scale = (lo: number, hi: number) => (v: number) =>
  LABEL + ((Math.min(Math.max(v, lo), hi) - lo) / (hi - lo || 1)) * PLOT;

/** Conversion rate per arm, with its interval; visitors and conversions written out. */
export function rateChart(report: ReportView, title: string): Html {
  const top = Math.max(0.01, ...report.arms.map((a) => a.interval[1])) * 1.1;
  const x = scale(0, top);
  const height = report.arms.length * ROW + 30;
  return html`<svg class="chart" role="img" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}">
<title>${title}</title>
${report.arms.map((arm, i) => {
  const y = 10 + i * ROW;
  return html`<g class="arm${arm.isControl ? " control" : ""}" data-arm="${arm.id}" data-exposures="${arm.exposures}" data-conversions="${arm.conversions}">
<text x="0" y="${y + 16}" class="label">${arm.id}${arm.isControl && arm.id !== "control" ? " (control)" : ""}</text>
<rect x="${LABEL}" y="${y + 4}" width="${num(x(arm.rate) - LABEL, 1)}" height="16" class="bar"/>
<line x1="${num(x(arm.interval[0]), 1)}" x2="${num(x(arm.interval[1]), 1)}" y1="${y + 12}" y2="${y + 12}" class="whisker"/>
<line x1="${num(x(arm.interval[0]), 1)}" x2="${num(x(arm.interval[0]), 1)}" y1="${y + 6}" y2="${y + 18}" class="whisker"/>
<line x1="${num(x(arm.interval[1]), 1)}" x2="${num(x(arm.interval[1]), 1)}" y1="${y + 6}" y2="${y + 18}" class="whisker"/>
<text x="${LABEL + PLOT + 10}" y="${y + 16}" class="value"><tspan class="rate">${pct(arm.rate)}</tspan> · <tspan class="conversions">${arm.conversions}</tspan>/<tspan class="exposures">${arm.exposures}</tspan></text>
</g>`;
})}
<text x="${LABEL}" y="${height - 4}" class="axis">0%</text>
<text x="${LABEL + PLOT}" y="${height - 4}" class="axis" text-anchor="end">${pct(top)}</text>
</svg>`;
}

/** Relative uplift of each arm against the control, with its interval, around a zero line. */
export function upliftChart(report: ReportView, title: string): Html {
  const arms = report.arms.filter((a) => a.uplift?.relative !== null && a.uplift !== null);
  if (arms.length === 0) return html`<p class="muted">No uplift yet: the control has no conversions.</p>`;
  const reach = Math.max(0.05, ...arms.flatMap((a) => (a.uplift?.relativeInterval ?? [0, 0]).map(Math.abs)));
  const x = scale(-reach * 1.1, reach * 1.1);
  const height = arms.length * ROW + 30;
  return html`<svg class="chart" role="img" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}">
<title>${title}</title>
<line x1="${num(x(0), 1)}" x2="${num(x(0), 1)}" y1="4" y2="${height - 20}" class="zero"/>
${arms.map((arm, i) => {
  const y = 10 + i * ROW;
  const uplift = arm.uplift!;
  const [lo, hi] = uplift.relativeInterval ?? [uplift.relative ?? 0, uplift.relative ?? 0];
  const cls = uplift.significant ? ((uplift.relative ?? 0) > 0 ? "better" : "worse") : "neutral";
  return html`<g class="uplift ${cls}" data-arm="${arm.id}">
<text x="0" y="${y + 16}" class="label">${arm.id}</text>
<line x1="${num(x(lo), 1)}" x2="${num(x(hi), 1)}" y1="${y + 12}" y2="${y + 12}" class="whisker"/>
<circle cx="${num(x(uplift.relative ?? 0), 1)}" cy="${y + 12}" r="5" class="point"/>
<text x="${LABEL + PLOT + 10}" y="${y + 16}" class="value">${signed(uplift.relative ?? 0)} [${signed(lo)}, ${signed(hi)}]</text>
</g>`;
})}
<text x="${LABEL}" y="${height - 4}" class="axis">${signed(-reach * 1.1)}</text>
<text x="${LABEL + PLOT}" y="${height - 4}" class="axis" text-anchor="end">${signed(reach * 1.1)}</text>
</svg>`;
}

const signed = (v: number): string => `${v > 0 ? "+" : ""}${(v * 100).toFixed(1)}%`;

/** Horizontal bars for named values (intent scores, affinities), longest first. */
export function barList(values: Readonly<Record<string, number>>, title: string): Html {
  const entries = Object.entries(values).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return html`<p class="muted">None.</p>`;
  const top = Math.max(...entries.map(([, v]) => Math.abs(v))) || 1;
  const height = entries.length * 24 + 6;
  return html`<svg class="chart" role="img" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}">
<title>${title}</title>
${entries.map(([name, v], i) => {
  const y = 4 + i * 24;
  return html`<g data-name="${name}"><text x="0" y="${y + 14}" class="label">${name}</text>
<rect x="${LABEL}" y="${y + 3}" width="${num((Math.abs(v) / top) * PLOT, 1)}" height="14" class="bar"/>
<text x="${LABEL + PLOT + 10}" y="${y + 14}" class="value">${num(v, 2)}</text></g>`;
})}
</svg>`;
}

/** Visitors per day per arm, one line each; drawn only when the API serves a daily series. */
export function visitorsChart(days: readonly DayView[], title: string): Html {
  const arms = [...new Set(days.flatMap((d) => Object.keys(d.arms)))];
  const top = Math.max(1, ...days.flatMap((d) => Object.values(d.arms)));
  const height = 180;
  const step = days.length > 1 ? (WIDTH - LABEL) / (days.length - 1) : 0;
  const y = (v: number) => 150 - (v / top) * 140;
  return html`<svg class="chart" role="img" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}">
<title>${title}</title>
${arms.map(
  (arm, i) =>
    html`<polyline class="series s${i % 4}" data-arm="${arm}" points="${days
      .map((d, j) => `${num(LABEL + j * step, 1)},${num(y(d.arms[arm] ?? 0), 1)}`)
      .join(" ")}"/><text x="0" y="${20 + i * 18}" class="label s${i % 4}">${arm}</text>`,
)}
<text x="${LABEL}" y="172" class="axis">${days[0]?.date ?? ""}</text>
<text x="${WIDTH}" y="172" class="axis" text-anchor="end">${days.at(-1)?.date ?? ""}</text>
<text x="${LABEL - 6}" y="14" class="axis" text-anchor="end">${top}</text>
</svg>`;
}
