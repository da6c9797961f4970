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

/**
 * Uplift of each arm against the control, with its interval, around a zero line: relative (+12%)
 * while the control converts, else absolute (+3.1 points), as the API reports them.
 */
export function upliftChart(report: ReportView, title: string): Html {
  const rows = report.arms.flatMap((arm) => {
    const u = arm.uplift;
    if (!u) return [];
    const relative = u.relative !== null && u.relativeInterval !== null;
    const value = relative ? u.relative! : u.absolute;
    const [lo, hi] = relative ? u.relativeInterval! : u.absoluteInterval;
    return [{ arm, value, lo, hi, unit: relative ? "%" : " pts", significant: u.significant }];
  });
  if (rows.length === 0) return html`<p class="muted">No arm to compare with the control.</p>`;
  const reach = Math.max(0.05, ...rows.flatMap((r) => [Math.abs(r.lo), Math.abs(r.hi)])) * 1.1;
  const x = scale(-reach, reach);
  const height = rows.length * ROW + 30;
  return html`<svg class="chart" role="img" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}">
<title>${title}</title>
<line x1="${num(x(0), 1)}" x2="${num(x(0), 1)}" y1="4" y2="${height - 20}" class="zero"/>
${rows.map((r, i) => {
  const y = 10 + i * ROW;
  const cls = r.significant ? (r.value > 0 ? "better" : "worse") : "neutral";
  return html`<g class="uplift ${cls}" data-arm="${r.arm.id}">
<text x="0" y="${y + 16}" class="label">${r.arm.id}</text>
<line x1="${num(x(r.lo), 1)}" x2="${num(x(r.hi), 1)}" y1="${y + 12}" y2="${y + 12}" class="whisker"/>
<circle cx="${num(x(r.value), 1)}" cy="${y + 12}" r="5" class="point"/>
<text x="${LABEL + PLOT + 10}" y="${y + 16}" class="value">${signed(r.value, r.unit)} [${signed(r.lo, r.unit)}, ${signed(r.hi, r.unit)}]</text>
</g>`;
})}
<text x="${LABEL}" y="${height - 4}" class="axis">${signed(-reach)}</text>
<text x="${LABEL + PLOT}" y="${height - 4}" class="axis" text-anchor="end">${signed(reach)}</text>
</svg>`;
}

/** A difference in percent (relative) or percentage points (absolute), with its sign. */
const signed = (v: number, unit = "%"): string => `${v > 0 ? "+" : ""}${(v * 100).toFixed(1)}${unit}`;

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
