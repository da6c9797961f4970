// Identity tokens through POST /_ns/v1/identify, inside workerd, minted as a site's backend mints
// them (v1.<exp>.<tokenId>.<userId>.<base64url HMAC>): a lifetime cap, one use per token, one
// spelling per signature. And a browser sending two visitor cookies is recognised by its valid one.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { toBase64Url } from "../../src/platform/crypto.ts";
import { canonicalForUser } from "../../src/state/visitor-id.ts";
import { eid, idOf, newVisitor, sendEvents, visit } from "./helpers.ts";

const SECRET = env.IDENTITY_SECRET as string;
const encoder = new TextEncoder();
let users = 0;
const newUser = () => `token-user-${Date.now()}-${++users}@example.com`;
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** What a site's backend does after a login: a fresh token id, an expiry, an HMAC over the rest. */
async function mint(
  userId: string,
  expiresAtSeconds: number,
  tokenId = crypto.randomUUID().replaceAll("-", ""),
) {
  const body = `v1.${expiresAtSeconds}.${tokenId}.${userId}`;
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(SECRET),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(body)));
  return `${body}.${toBase64Url(mac)}`;
}

async function identify(token: string, cookie?: string) {
  const res = await visit("/_ns/v1/identify", {
    method: "POST",
    ...(cookie ? { cookie } : {}),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token }),
  });
  return {
    status: res.status,
    body: (await res.json()) as { error?: string; message?: string; visitorId?: string },
  };
}

describe("identity tokens at POST /_ns/v1/identify", () => {
  it("a token valid for longer than IDENTITY_TOKEN_MAX_TTL_SECONDS (600 s) is refused, naming why", async () => {
    const user = newUser();
    // Twice the cap: the worker's clock runs on from ours while it loads, never back.
    const stretched = await identify(await mint(user, nowSeconds() + 1200));
    expect(stretched.status).toBe(403);
    expect(stretched.body.error).toBe("invalid_token");
    expect(stretched.body.message).toMatch(/IDENTITY_TOKEN_MAX_TTL_SECONDS/);
    // Year 33658: the reported case.
    expect((await identify(await mint(user, 999_999_999_999))).status).toBe(403);
    // Within the cap, the same person signs in.
    const fine = await identify(await mint(user, nowSeconds() + 600));
    expect(fine.status).toBe(200);
    expect(fine.body.visitorId).toBe(await canonicalForUser(user));
  });

  it("a token works once: its replay is refused, naming why; a fresh token for the same person works", async () => {
    const user = newUser();
    const token = await mint(user, nowSeconds() + 300);
    const cookie = await newVisitor();
    expect((await identify(token, cookie)).status).toBe(200);
    const replayed = await identify(token, cookie);
    expect(replayed.status).toBe(403);
    expect(replayed.body.error).toBe("invalid_token");
    expect(replayed.body.message).toMatch(/already used/);
    // From another browser too: the record is the person's, not the browser's.
    expect((await identify(token, await newVisitor())).status).toBe(403);
    const fresh = await identify(await mint(user, nowSeconds() + 300), cookie);
    expect(fresh.status).toBe(200);
    expect(fresh.body.visitorId).toBe(await canonicalForUser(user));
  });

  it("a signature whose last character is spelled another way is refused; the canonical one then works", async () => {
    const token = await mint(newUser(), nowSeconds() + 300);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(token.at(-1)!);
    // 32 bytes are 43 characters with 2 unused bits in the last: 3 other spellings decode the same.
    for (const unused of [1, 2, 3]) {
      const respelled = `${token.slice(0, -1)}${alphabet[last ^ unused]}`;
      const res = await identify(respelled);
      expect(res.status).toBe(403);
      expect(res.body.message).toMatch(/signature/);
    }
    expect((await identify(token)).status).toBe(200);
  });
});

describe("two visitor cookies in one header", () => {
  it("an invalid first and a valid second: the valid visitor is recognised on a page and on decide", async () => {
    const valid = await newVisitor();
    await sendEvents(valid, [
      { id: eid(), type: "product_view", props: { category: "running", path: "/running/trail-runner-2" } },
      { id: eid(), type: "product_view", props: { category: "running", path: "/running/road-racer" } },
    ]);
    const other = await newVisitor();
    const forged = other.replace(/\.[^.]+$/, ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    const cookie = `${forged}; ${valid}`;

    const page = await visit("/", { cookie });
    expect(await page.text()).toContain("Ready for your next run, runner?");
    // Recognised: no new visitor cookie replaces the valid one.
    expect(page.headers.getSetCookie().filter((c) => c.includes("ns_vid="))).toEqual([]);

    const decided = await visit("/_ns/v1/decide", {
      method: "POST",
      cookie,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ channel: "web", placements: ["home-hero"] }),
    });
    expect(decided.status).toBe(200);
    expect(((await decided.json()) as { visitorId: string }).visitorId).toBe(idOf(valid));
  });
});
