import { type Html, html } from "./html.ts";

/** What every signed-in page needs: where the console lives, and the session's CSRF token for forms. */
export interface PageContext {
  /** The console's path, e.g. `/_ns/console`. */
  readonly base: string;
  readonly csrf: string;
}

/**
 * The Content-Security-Policy of every console answer: no script at all (the console has none),
 * styles from its own stylesheet only, forms posting only to itself, never framed.
 */
export const CONSOLE_CSP =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONSOLE_CSP,
  "cache-control": "private, no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
};

const NAV: ReadonlyArray<readonly [string, string]> = [
  ["/experiments", "Experiments"],
  ["/programme", "Programme lift"],
  ["/rules", "Rules"],
  ["/person", "Person"],
  ["/dead-letters", "Dead letters"],
];

/** A signed-in page: navigation, the sign-out form, and the body. */
export function page(ctx: PageContext, title: string, body: Html): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Northstar console</title><link rel="stylesheet" href="${ctx.base}/console.css"></head>
<body><header><a class="brand" href="${ctx.base}/">Northstar</a><nav>${NAV.map(
    ([path, label]) => html`<a href="${ctx.base}${path}">${label}</a>`,
  )}</nav>
<form method="post" action="${ctx.base}/sign-out" class="sign-out"><input type="hidden" name="csrf" value="${ctx.csrf}"><button type="submit">Sign out</button></form></header>
<main><h1>${title}</h1>${body}</main></body></html>`;
}

/** A page outside the session (sign-in, errors before it). */
export function bare(base: string, title: string, body: Html): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Northstar console</title><link rel="stylesheet" href="${base}/console.css"></head>
<body><main class="narrow"><h1>${title}</h1>${body}</main></body></html>`;
}

export function htmlResponse(body: Html, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(body.text, {
    status,
    headers: { "content-type": "text/html; charset=utf-8", ...SECURITY_HEADERS, ...headers },
  });
}

/** The console's stylesheet, served at `<base>/console.css`. */
export const CONSOLE_CSS = `
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{display:flex;gap:1.5rem;align-items:center;padding:.6rem 1.2rem;background:#1d2330;color:#fff}
header a{color:#dfe6f3;text-decoration:none}header a:hover{text-decoration:underline}
.brand{font-weight:700;color:#fff}nav{display:flex;gap:1rem;flex:1}
.sign-out button{background:none;border:1px solid #8a94a8;color:#fff;border-radius:4px;padding:.2rem .7rem;cursor:pointer}
main{max-width:980px;margin:1.2rem auto;padding:0 1.2rem}main.narrow{max-width:420px}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.8rem}h3{font-size:1rem}
table{border-collapse:collapse;background:#fff;margin:.5rem 0}td,th{border:1px solid #dde1e8;padding:.3rem .6rem;text-align:left;vertical-align:top}
.chart{background:#fff;border:1px solid #dde1e8;max-width:100%;height:auto}
.chart .label,.chart .value,.chart .axis{font-size:12px;fill:#1d2330}.chart .axis{fill:#6b7385}
.chart .bar{fill:#7ea6e0}.chart .control .bar{fill:#b8c2d3}.chart .whisker{stroke:#1d2330;stroke-width:1.5}
.chart .zero{stroke:#6b7385;stroke-dasharray:3 3}.chart .point{fill:#6b7385}
.chart .better .point{fill:#2e8b57}.chart .worse .point{fill:#c0392b}
.chart .series{fill:none;stroke-width:2}.s0{stroke:#3b6fc4;fill:#3b6fc4}.s1{stroke:#e07b39;fill:#e07b39}.s2{stroke:#2e8b57;fill:#2e8b57}.s3{stroke:#8e44ad;fill:#8e44ad}
.flag{display:inline-block;padding:.15rem .5rem;border-radius:4px;background:#fde2e1;color:#8b1c13;font-weight:600}
.ok{display:inline-block;padding:.15rem .5rem;border-radius:4px;background:#e3f4ea;color:#1e6b3a}
.muted{color:#6b7385}.error{color:#8b1c13;background:#fde2e1;padding:.5rem .8rem;border-radius:4px}
pre.diff{background:#fff;border:1px solid #dde1e8;padding:.5rem;overflow:auto;font-size:12.5px}
.diff .add{background:#e3f4ea;display:block}.diff .del{background:#fde2e1;display:block}.diff .hunk{color:#6b7385;display:block}
form.inline{display:inline}input,select,button{font:inherit;padding:.25rem .5rem}
label{display:block;margin:.4rem 0}ol.timeline{padding-left:1.2rem}ol.timeline li{margin:.15rem 0}
`;
