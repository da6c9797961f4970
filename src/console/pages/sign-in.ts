import { type Html, html } from "../html.ts";
import { bare } from "../layout.ts";

/** The sign-in form: the admin token, posted to the console, exchanged for a session cookie. */
export function signInPage(base: string, problem: string | null, notice: string | null = null): Html {
  return bare(
    base,
    "Sign in",
    html`${problem ? html`<p class="error" id="problem">${problem}</p>` : ""}${notice ? html`<p class="ok" id="notice">${notice}</p>` : ""}
<form method="post" action="${base}/sign-in">
<label>Admin token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Sign in</button></form>
<p class="muted">The token is the worker's ADMIN_TOKEN. A session lasts 8 hours.</p>`,
  );
}
