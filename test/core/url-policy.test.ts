import { describe, expect, it } from "vitest";
import { attributeRefusal, redirectTarget } from "../../src/core/url-policy.ts";
import { parseRules } from "../../src/rules/index.ts";

const SITE = "shop.example";

describe("redirect targets", () => {
  it.each([
    ["//evil.example/x", "protocol-relative to another host"],
    ["/\\evil.example", "a backslash browsers read as a slash"],
    ["\\\\evil.example", "backslashes only"],
    ["/\\/evil.example/", "slash, backslash, slash"],
    ["https:evil.example", "a scheme without //"],
    ["https:/evil.example", "a scheme with one slash"],
    ["https://evil.example/x", "an absolute URL on another host"],
    ["HTTPS://EVIL.EXAMPLE/", "upper case"],
    ["https://shop.example@evil.example/", "this site's name as credentials"],
    ["https://user:pw@shop.example/", "credentials on this site"],
    ["https://shop.example.evil.example/", "this site's name as a subdomain of another"],
    ["https://shop.example:8443/", "this site's name on another port"],
    [" //evil.example", "leading space"],
    ["/ /evil.example", "a space inside"],
    ["\t//evil.example", "leading tab"],
    ["/\t/evil.example", "a tab between the slashes"],
    ["/\n/evil.example", "a newline between the slashes"],
    ["/x\r\nSet-Cookie: a=b", "CR/LF (a forged header)"],
    ["\u0000//evil.example", "a NUL"],
    ["/\u00a0/evil.example", "a no-break space"],
    ["javascript:alert(1)", "javascript:"],
    ["data:text/html,<script>alert(1)</script>", "data:"],
    ["ftp://shop.example/", "another scheme on this host"],
    ["", "empty"],
  ])("refuses %j (%s)", (raw) => {
    expect(redirectTarget(raw, SITE, [])).toBeNull();
  });

  it.each([
    ["/landing", "/landing"],
    ["/sale?from=%2Fcart#top", "/sale?from=%2Fcart#top"],
    ["landing", "landing"],
    ["?page=2", "?page=2"],
    ["/%5Cevil.example", "/%5Cevil.example"],
    ["https://shop.example/a?b=c", "https://shop.example/a?b=c"],
    ["HTTP://Shop.Example/a", "http://shop.example/a"],
    ["//shop.example/a", "//shop.example/a"],
  ])("keeps %j on this site", (raw, expected) => {
    expect(redirectTarget(raw, SITE, [])).toBe(expected);
  });

  it("goes to a host the rules list, and only to that host", () => {
    const allowed = ["help.example", "pay.example:8443"];
    expect(redirectTarget("https://help.example/faq", SITE, allowed)).toBe("https://help.example/faq");
    expect(redirectTarget("https://pay.example:8443/", SITE, allowed)).toBe("https://pay.example:8443/");
    expect(redirectTarget("https://pay.example/", SITE, allowed)).toBeNull();
    expect(redirectTarget("https://evil.help.example/", SITE, allowed)).toBeNull();
  });

  it("without a known site host, only paths and listed hosts pass", () => {
    expect(redirectTarget("/landing", null, [])).toBe("/landing");
    expect(redirectTarget("https://shop.example/", null, [])).toBeNull();
    expect(redirectTarget("https://shop.example/", null, ["shop.example"])).toBe("https://shop.example/");
  });
});

describe("attribute values", () => {
  it.each([
    ["href", "javascript:alert(1)"],
    ["HREF", "JavaScript:alert(1)"],
    ["href", " javascript:alert(1)"],
    ["href", "\u0001javascript:alert(1)"],
    ["href", "java\tscript:alert(1)"],
    ["href", "java\nscript:alert(1)"],
    ["href", "&#106;avascript:alert(1)"],
    ["href", "&#x6A;avascript:alert(1)"],
    ["href", "javascript&colon;alert(1)"],
    ["href", "vbscript:msgbox(1)"],
    ["src", "data:text/html,<script>alert(1)</script>"],
    ["action", "javascript:alert(1)"],
    ["formaction", "javascript:alert(1)"],
    ["xlink:href", "javascript:alert(1)"],
    ["poster", "javascript:alert(1)"],
    ["srcset", "/a.png 1x, javascript:alert(1) 2x"],
    ["ping", "/count javascript:alert(1)"],
    ["href", "blob:https://shop.example/x"],
  ])("refuses %s=%j as a URL scheme", (name, value) => {
    expect(attributeRefusal(name, value)).toBe("url_scheme");
  });

  it.each(["onload", "onerror", "OnClick", "ONMOUSEOVER"])(
    "refuses the event handler %s, whatever its value",
    (name) => {
      expect(attributeRefusal(name, "https://shop.example/")).toBe("event_handler");
    },
  );

  it("refuses srcdoc, a whole document in an attribute", () => {
    expect(attributeRefusal("srcdoc", "<p>hi</p>")).toBe("markup");
  });

  it.each([
    ["href", "https://shop.example/sale"],
    ["href", "http://shop.example/"],
    ["href", "mailto:help@shop.example"],
    ["href", "tel:+33123456789"],
    ["href", "/sale?x=a:b"],
    ["href", "#top"],
    ["href", ""],
    ["src", "img/hero.png"],
    ["srcset", "/a.png 1x, https://cdn.example/b.png 2x"],
    ["data-variant", "javascript:alert(1)"],
    ["title", "data:anything"],
  ])("sets %s=%j", (name, value) => {
    expect(attributeRefusal(name, value)).toBeNull();
  });
});

describe("the rules validator", () => {
  const doc = (placement: Record<string, unknown>, content: Record<string, string>, settings = {}) => ({
    version: "holes-1",
    settings,
    placements: { slot: { selector: "#hero", pages: ["/"], ...placement } },
    experiences: [{ id: "x", placement: "slot", content }],
  });
  const errorsOf = (json: unknown) => {
    const r = parseRules(json);
    return r.ok ? [] : r.errors;
  };

  it.each(["onload", "OnError", "srcdoc"])(
    "refuses set_attribute on %s, at the placement's attribute",
    (attribute) => {
      const errors = errorsOf(
        doc({ action: "set_attribute", attribute }, { attribute: "{{ context.query.h }}" }),
      );
      expect(errors).toEqual([
        { path: "placements.slot.attribute", message: expect.stringContaining(attribute) },
      ]);
    },
  );

  it.each([
    ["href", "javascript:alert(1)"],
    ["src", "data:text/html,<script>alert(1)</script>"],
    ["formaction", "VBScript:msgbox(1)"],
    ["xlink:href", "javascript:{{ context.query.h }}"],
    ["srcset", "/a.png 1x, javascript:alert(1) 2x"],
  ])("refuses %s=%j, at the content's path", (attribute, value) => {
    const errors = errorsOf(doc({ action: "set_attribute", attribute }, { attribute: value }));
    expect(errors).toEqual([
      { path: "experiences[0].content.attribute", message: expect.stringMatching(/never javascript:/) },
    ]);
  });

  it("refuses a style filled from a template, and keeps a literal one", () => {
    const templated = errorsOf(
      doc({ action: "set_attribute", attribute: "style" }, { attribute: "color: {{ context.query.c }}" }),
    );
    expect(templated).toEqual([
      {
        path: "experiences[0].content.attribute",
        message: expect.stringMatching(/style filled from a template/),
      },
    ]);
    expect(
      errorsOf(doc({ action: "set_attribute", attribute: "style" }, { attribute: "color: red" })),
    ).toEqual([]);
  });

  it("accepts URL attributes filled from a template (checked on every request) and safe literals", () => {
    expect(
      errorsOf(doc({ action: "set_attribute", attribute: "href" }, { attribute: "{{ context.query.h }}" })),
    ).toEqual([]);
    expect(
      errorsOf(
        doc(
          { action: "set_attribute", attribute: "href" },
          { attribute: "https://shop.example/{{ traits.tier }}" },
        ),
      ),
    ).toEqual([]);
    expect(
      errorsOf(
        doc({ action: "set_attribute", attribute: "href" }, { attribute: "mailto:help@shop.example" }),
      ),
    ).toEqual([]);
  });

  it("refuses literal redirects to unlisted hosts, and template redirects with another scheme", () => {
    const at = [
      { path: "experiences[0].content.redirect", message: expect.stringMatching(/settings\.redirectHosts/) },
    ];
    expect(errorsOf(doc({ action: "redirect" }, { redirect: "//evil.example/x" }))).toEqual(at);
    expect(errorsOf(doc({ action: "redirect" }, { redirect: "https://evil.example/x" }))).toEqual(at);
    expect(errorsOf(doc({ action: "redirect" }, { redirect: "/\\evil.example" }))).toEqual(at);
    expect(errorsOf(doc({ action: "redirect" }, { redirect: "javascript:{{ context.query.n }}" }))).toEqual(
      at,
    );
    expect(errorsOf(doc({ action: "redirect" }, { redirect: "/landing" }))).toEqual([]);
    expect(errorsOf(doc({ action: "redirect" }, { redirect: "{{ context.query.next }}" }))).toEqual([]);
    const listed = { redirectHosts: ["help.example"] };
    expect(errorsOf(doc({ action: "redirect" }, { redirect: "https://help.example/faq" }, listed))).toEqual(
      [],
    );
  });

  it("refuses a redirect host that is not a host", () => {
    const errors = errorsOf(
      doc({ action: "redirect" }, { redirect: "/landing" }, { redirectHosts: ["https://help.example/"] }),
    );
    expect(errors).toEqual([
      { path: "settings.redirectHosts[0]", message: expect.stringMatching(/lowercase host/) },
    ]);
  });
});
