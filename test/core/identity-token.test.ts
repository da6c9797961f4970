// Signed values in Node: identity tokens as a site's backend signs them (the documented Node snippet),
// their lifetime cap and format, one canonical spelling per base64url value (cookies, identity and
// preview tokens), and the valid visitor cookie winning over an invalid one sent before it.
import { createHmac, randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { signPreview, verifyPreview } from "../../src/edge/preview.ts";
import { ConfigSchema } from "../../src/platform/config.ts";
import { fromBase64Url, signValue, toBase64Url } from "../../src/platform/crypto.ts";
import { readVisitorCookie, signIdentityToken, verifyIdentityToken } from "../../src/state/visitor-id.ts";

const SECRET = "identity-secret-for-core-tests";
const NOW = 1_795_000_000_000;
const nowSeconds = NOW / 1000;
const LIMITS = { nowMs: NOW, maxLifetimeSeconds: 600 };
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** The same text with its last character's unused bits set otherwise: decodes to the same bytes under atob. */
function respellings(text: string): string[] {
  const last = ALPHABET.indexOf(text.at(-1)!);
  const unusedBits = { 2: 4, 3: 2 }[text.length % 4] ?? 0;
  return Array.from(
    { length: 2 ** unusedBits - 1 },
    (_, i) => `${text.slice(0, -1)}${ALPHABET[last ^ (i + 1)]}`,
  );
}

describe("base64url", () => {
  it("every byte string reads back from its encoding", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(fromBase64Url(toBase64Url(bytes))).toEqual(bytes);
      }),
    );
  });

  it("any other spelling of the last character is refused", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
        for (const other of respellings(toBase64Url(bytes))) expect(fromBase64Url(other)).toBeNull();
      }),
    );
  });

  it("padding, the standard alphabet's + and /, and impossible lengths are refused", () => {
    expect(fromBase64Url("AA")).toEqual(new Uint8Array([0]));
    for (const text of ["AA==", "AA=", "+w", "/w", "A", "AAAAA", "AA AA", "AB"]) {
      expect(fromBase64Url(text), text).toBeNull();
    }
  });
});

describe("identity tokens", () => {
  it("are what the documented Node snippet signs: v1.<exp>.<token id>.<userId>.<HMAC>", async () => {
    const userId = "ana.lopez@example.com"; // dots in the user id: the signature is after the last dot
    const exp = nowSeconds + 300;
    // The snippet in signIdentityToken's @example and docs/identity.md, as a site's backend runs it.
    const body = `v1.${exp}.${randomBytes(16).toString("base64url")}.${userId}`;
    const token = `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
    const tokenId = body.split(".")[2]!;
    expect(await signIdentityToken(SECRET, userId, exp, tokenId)).toBe(token);
    expect(await verifyIdentityToken(SECRET, token, LIMITS)).toEqual({
      ok: true,
      claim: { userId, tokenId, expiresAtMs: exp * 1000 },
    });
  });

  it("each token gets its own id", async () => {
    const a = await signIdentityToken(SECRET, "customer-42", nowSeconds + 300);
    const b = await signIdentityToken(SECRET, "customer-42", nowSeconds + 300);
    const idOf = async (t: string) => {
      const checked = await verifyIdentityToken(SECRET, t, LIMITS);
      return checked.ok ? checked.claim.tokenId : null;
    };
    expect(await idOf(a)).not.toBeNull();
    expect(await idOf(a)).not.toBe(await idOf(b));
  });

  it("the lifetime is capped: up to the cap is fine, one second more is refused, and so is year 33658", async () => {
    const reason = async (exp: number) => {
      const checked = await verifyIdentityToken(SECRET, await signIdentityToken(SECRET, "u-1", exp), LIMITS);
      return checked.ok ? "ok" : checked.reason;
    };
    expect(await reason(nowSeconds + 600)).toBe("ok");
    expect(await reason(nowSeconds + 601)).toBe("lifetime_too_long");
    expect(await reason(999_999_999_999)).toBe("lifetime_too_long");
    expect(await reason(nowSeconds - 1)).toBe("expired");
  });

  it("refuses other formats, foreign signatures, altered claims and re-spelled signatures", async () => {
    const exp = nowSeconds + 300;
    const good = await signIdentityToken(SECRET, "customer-42", exp);
    const reason = async (token: string) => {
      const checked = await verifyIdentityToken(SECRET, token, LIMITS);
      return checked.ok ? "ok" : checked.reason;
    };
    expect(await reason(good)).toBe("ok");
    const oldFormat = `customer-42.${exp}`;
    expect(await reason(`${oldFormat}.${await signValue(SECRET, oldFormat)}`)).toBe("malformed");
    for (const body of [
      `v2.${exp}.AAAAAAAAAAAAAAAAAAAAAA.customer-42`, // another version
      `v1.0${exp}.AAAAAAAAAAAAAAAAAAAAAA.customer-42`, // a second spelling of the expiry
      `v1.${exp}.short.customer-42`, // a token id too short to be unique
      `v1.${exp}.AAAAAAAAAAAAAAAAAAAAAA.`, // no user id
      `v1.${exp}.AAAAAAAAAAAAAAAAAAAAAA.${"x".repeat(257)}`,
    ]) {
      expect(await reason(`${body}.${await signValue(SECRET, body)}`), body).toBe("malformed");
    }
    expect(await reason(await signIdentityToken("another-secret-0123456789", "customer-42", exp))).toBe(
      "bad_signature",
    );
    expect(await reason(good.replace("customer-42", "customer-43"))).toBe("bad_signature");
    for (const respelled of respellings(good)) expect(await reason(respelled)).toBe("bad_signature");
  });
});

describe("signed values that verify through the same function", () => {
  const config = ConfigSchema.parse({
    ORIGIN: "https://shop.test",
    COOKIE_SECRET: "cookie-secret-for-core-tests",
    COOKIE_SECURE: "false",
  });
  const cookieFor = async (id: string) => `${id}.${await signValue(config.COOKIE_SECRET!, id)}`;
  const withCookies = (header: string) => new Request("https://shop.test/", { headers: { cookie: header } });

  it("a visitor cookie with a re-spelled signature is not the visitor", async () => {
    const valid = await cookieFor("eYO5oaMRkFjhZVnF1fAhLQ");
    expect(await readVisitorCookie(withCookies(`ns_vid=${valid}`), config)).toBe("eYO5oaMRkFjhZVnF1fAhLQ");
    for (const respelled of respellings(valid)) {
      expect(await readVisitorCookie(withCookies(`ns_vid=${respelled}`), config)).toBeNull();
    }
  });

  it("of several visitor cookies, the first valid one in header order is the visitor", async () => {
    const first = await cookieFor("firstVisitor0000000000");
    const second = await cookieFor("secondVisitor000000000");
    const forged = first.replace(/\.[^.]+$/, ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    const read = (header: string) => readVisitorCookie(withCookies(header), config);
    expect(await read(`ns_vid=${forged}; theme=dark; ns_vid=${second}`)).toBe("secondVisitor000000000");
    expect(await read(`ns_vid=${first}; ns_vid=${second}`)).toBe("firstVisitor0000000000");
    expect(await read(`ns_vid=; ns_vid=not-signed; ns_vid=${second}`)).toBe("secondVisitor000000000");
    expect(await read(`ns_vid=${forged}; ns_vid=not-signed`)).toBeNull();
  });

  it("a preview token with a re-spelled signature is ignored", async () => {
    const token = await signPreview("admin-token-for-tests", {
      forced: { "home-hero": { experience: "hero-runner" } },
      explain: true,
      exp: nowSeconds + 60,
    });
    expect(await verifyPreview("admin-token-for-tests", token, NOW)).not.toBeNull();
    for (const respelled of respellings(token)) {
      expect(await verifyPreview("admin-token-for-tests", respelled, NOW)).toBeNull();
    }
  });
});
