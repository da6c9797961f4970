import type { DayView } from "./data.ts";
import { type Html, html, num } from "./html.ts";

/**
 * Hand-made SVG charts: bars with 95% interval whiskers, differences around zero, and lines. No
 * script, no style attribute (the CSP allows neither): colours come from classes in console.css.
 * Each arm's numbers are printed beside its bar, as the API gave them.
 */

const WIDTH = 720;
const LABEL = 150;
const ROW = 34;
const PLOT = WIDTH - LABEL - 270;

/** x of `v` on a [lo, hi] axis over the plot area. */
const scale = (lo: number, hi: number) => (v: number) =>
  LABEL + ((Math.min(Math.max(v, lo), hi) - lo) / (hi - lo || 1)) * PLOT;

/** A bar with its 95% interval, and the numbers printed beside it (already formatted, with classes). */
export interface Bar {
  readonly id: string;
  readonly isControl: boolean;
  readonly value: number;
  readonly interval: readonly [number, number] | null;
  readonly printed: Html;
}

/** One bar per arm from 0, with its interval's whiskers; the axis reaches the highest interval. */
export function barChart(
  kind: string,
  bars: readonly Bar[],
  title: string,
  axis: (v: number) => string,
): Html {
  const top = Math.max(0.01, ...bars.map((b) => b.interval?.[1] ?? b.value)) * 1.1;
  const x = scale(0, top);
  const height = bars.length * ROW + 30;
  return html`<svg class="chart ${kind}" role="img" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}">
<title>${title}</title>
${bars.map((bar, i) => {
  const y = 10 + i * ROW;
  const [lo, hi] = (bar.interval ?? [bar.value, bar.value]).map((v) => num(x(v), 1));
  return html`<g class="arm${bar.isControl ? " control" : ""}" data-arm="${bar.id}">
<text x="0" y="${y + 16}" class="label">${bar.id}${bar.isControl ? " (control)" : ""}</text>
<rect x="${LABEL}" y="${y + 4}" width="${num(Math.max(0, x(bar.value) - LABEL), 1)}" height="16" class="bar"/>
${bar.interval ? html`<path d="M${lo} ${y + 12}H${hi}M${lo} ${y + 6}v12M${hi} ${y + 6}v12" class="whisker"/>` : ""}
<text x="${LABEL + PLOT + 10}" y="${y + 16}" class="value">${bar.printed}</text>
</g>`;
})}
<text x="${LABEL}" y="${height - 4}" class="axis">${axis(0)}</text>
<text x="${LABEL + PLOT}" y="${height - 4}" class="axis" text-anchor="end">${axis(top)}</text>
</svg>`;
}

/** A difference against the control with its interval, in the unit it is printed in. */
export interface Difference {
  readonly id: string;
  readonly value: number;
  readonly interval: readonly [number, number];
  readonly significant: boolean;
  readonly print: (v: number) => string;
}

/** Each arm's difference against the control, with its interval, around a zero line. */
export function differenceChart(kind: string, rows: readonly Difference[], title: string): Html {
  if (rows.length === 0) return html`<p class="muted">No arm to compare with the control yet.</p>`;
  const reach =
    Math.max(1e-9, ...rows.flatMap((r) => [Math.abs(r.interval[0]), Math.abs(r.interval[1])])) * 1.1;
  const x = scale(-reach, reach);
  const height = rows.length * ROW + 30;
  return html`<svg class="chart ${kind}" role="img" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}">
<title>${title}</title>
<line x1="${num(x(0), 1)}" x2="${num(x(0), 1)}" y1="4" y2="${height - 20}" class="zero"/>
${rows.map((r, i) => {
  const y = 10 + i * ROW;
  const cls = r.significant ? (r.value > 0 ? "better" : "worse") : "neutral";
  return html`<g class="uplift ${cls}" data-arm="${r.id}">
<text x="0" y="${y + 16}" class="label">${r.id}</text>
<line x1="${num(x(r.interval[0]), 1)}" x2="${num(x(r.interval[1]), 1)}" y1="${y + 12}" y2="${y + 12}" class="whisker"/>
<circle cx="${num(x(r.value), 1)}" cy="${y + 12}" r="5" class="point"/>
<text x="${LABEL + PLOT + 10}" y="${y + 16}" class="value"><tspan class="mid">${r.print(r.value)}</tspan> [<tspan class="lo">${r.print(r.interval[0])}</tspan>, <tspan class="hi">${r.print(r.interval[1])}</tspan>]</text>
</g>`;
})}
<text x="${LABEL}" y="${height - 4}" class="axis">${rows[0]!.print(-reach)}</text>
<text x="${LABEL + PLOT}" y="${height - 4}" class="axis" text-anchor="end">${rows[0]!.print(reach)}</text>
</svg>`;
}

/** A difference in percent (relative) or percentage points (absolute), with its sign. */
export const signed = (v: number, unit = "%"): string => `${v > 0 ? "+" : ""}${(v * 100).toFixed(1)}${unit}`;

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

/** Visitors first exposed per day, one line per arm, from the API's daily rows (one per day and arm). */
export function visitorsChart(daily: readonly DayView[], title: string): Html {
  const dates = [...new Set(daily.map((d) => d.date))].sort();
  const arms = [...new Set(daily.map((d) => d.variant))];
  const count = new Map(daily.map((d) => [`${d.date} ${d.variant}`, d.visitors]));
  const top = Math.max(1, ...daily.map((d) => d.visitors));
  const step = dates.length > 1 ? (WIDTH - LABEL) / (dates.length - 1) : 0;
  const y = (v: number) => 150 - (v / top) * 140;
  return html`<svg class="chart" role="img" viewBox="0 0 ${WIDTH} 180" width="${WIDTH}" height="180">
<title>${title}</title>
${arms.map(
  (arm, i) =>
    html`<polyline class="series s${i % 4}" data-arm="${arm}" points="${dates
      .map((date, j) => `${num(LABEL + j * step, 1)},${num(y(count.get(`${date} ${arm}`) ?? 0), 1)}`)
      .join(" ")}"/>${dates.map(
      (date, j) =>
        html`<circle class="s${i % 4}" cx="${num(LABEL + j * step, 1)}" cy="${num(y(count.get(`${date} ${arm}`) ?? 0), 1)}" r="3"><title>${arm} ${date}: ${count.get(`${date} ${arm}`) ?? 0}</title></circle>`,
    )}<text x="0" y="${20 + i * 18}" class="label s${i % 4}">${arm}</text>`,
)}
<text x="${LABEL}" y="172" class="axis">${dates[0] ?? ""}</text>
<text x="${WIDTH}" y="172" class="axis" text-anchor="end">${dates.at(-1) ?? ""}</text>
<text x="${LABEL - 6}" y="14" class="axis" text-anchor="end">${top}</text>
</svg>`;
}
