import { describe, expect, it } from "vitest";
import { escapeAttr, escapeHtml, escapeJsonString, jsonForInlineScript } from "../../src/core/escape.ts";
import {
  compileJsonTemplate,
  compileTemplate,
  formatNumber,
  type TemplateScope,
} from "../../src/core/templates.ts";

const render = (src: string, scope: TemplateScope, mode: "html" | "json" | "text" = "html") => {
  const t = compileTemplate(src, mode);
  if (!t.ok) throw new Error(t.error);
  return t.template(scope);
};
const compileError = (src: string) => {
  const t = compileTemplate(src, "html");
  return t.ok ? null : t.error;
};

describe("compileTemplate", () => {
  it("interpolates dotted paths and falls back to the default", () => {
    const scope = {
      traits: { firstName: "Ana" },
      context: { geo: { city: "Lyon" } },
      intent: { top: "running" },
    };
    expect(render("Hi {{ traits.firstName }} from {{context.geo.city}} ({{ intent.top }})", scope)).toBe(
      "Hi Ana from Lyon (running)",
    );
    expect(render('Hi {{ traits.firstName | default: "there" }}!', { traits: {} })).toBe("Hi there!");
    expect(
      render("{{ traits.points }} pts, vip: {{ traits.vip }}", { traits: { points: 0, vip: false } }),
    ).toBe("0 pts, vip: false");
  });

  it("never renders 'undefined', 'null', 'NaN' or '[object Object]'", () => {
    const scope = { traits: { obj: { a: 1 }, list: [1, 2], nul: null, nan: Number.NaN, empty: "" } };
    const out = render(
      "[{{ traits.obj }}|{{ traits.list }}|{{ traits.nul }}|{{ traits.nan }}|{{ traits.missing }}|{{ nope.deeper.still }}|{{ traits.empty }}]",
      scope,
    );
    expect(out).toBe("[||||||]");
    expect(
      render(
        '{{ traits.obj | default: "x" }}{{ traits.nul | default: "y" }}{{ traits.empty | default: "z" }}',
        scope,
      ),
    ).toBe("xyz");
  });

  it("escapes values and defaults in html mode, but not the author's markup", () => {
    const scope = { traits: { name: `<img src=x onerror="alert(1)">'&` } };
    expect(render("<b>{{ traits.name }}</b>", scope)).toBe(
      "<b>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&#39;&amp;</b>",
    );
    expect(render('<b>{{ traits.missing | default: "<you>" }}</b>', scope)).toBe("<b>&lt;you&gt;</b>");
  });

  it("escapes as JSON string content in json mode, and not at all in text mode", () => {
    const scope = { traits: { q: 'say "hi"\n</script>\u2028' } };
    const json = render('{"q":"{{ traits.q }}"}', scope, "json");
    expect(JSON.parse(json)).toEqual({ q: scope.traits.q });
    expect(json).not.toContain("</script>");
    expect(render("{{ traits.q }}", scope, "text")).toBe(scope.traits.q);
  });

  it("applies filters left to right", () => {
    const s = { traits: { name: "running shoes", mixed: "mcKenzie", long: "abcdefghij", emoji: "👟👟👟👟" } };
    expect(render("{{ traits.name | upcase }}", s)).toBe("RUNNING SHOES");
    expect(render("{{ traits.mixed | downcase }}", s)).toBe("mckenzie");
    expect(render("{{ traits.mixed | capitalize }}", s)).toBe("McKenzie");
    expect(render("{{ traits.long | truncate: 5 }}|{{ traits.long | truncate: 10 }}", s)).toBe(
      "abcd…|abcdefghij",
    );
    expect(render("{{ traits.emoji | truncate: 3 }}", s)).toBe("👟👟…");
    expect(render("{{ traits.name | upcase | truncate: 4 }}", s)).toBe("RUN…");
    expect(render('{{ traits.missing | default: "there" | upcase }}', s)).toBe("THERE");
    expect(render('{{ traits.missing | upcase | default: "there" }}', s)).toBe("there");
  });

  it("url_encode makes a safe query component, even from broken UTF-16", () => {
    expect(render("?q={{ traits.q | url_encode }}", { traits: { q: "a b&c=d/é" } }, "text")).toBe(
      "?q=a%20b%26c%3Dd%2F%C3%A9",
    );
    expect(render("{{ traits.q | url_encode }}", { traits: { q: "x\uD800y" } }, "text")).toBe("x%EF%BF%BDy");
  });

  it("formats numbers the same way in every locale", () => {
    const s = { traits: { big: 1234567, price: 1234.5, text: "42", neg: -9876.543, word: "n/a" } };
    expect(render("{{ traits.big | number }}", s)).toBe("1,234,567");
    expect(render("{{ traits.price | number }}", s)).toBe("1,234.50");
    expect(render("{{ traits.price | number: 0 }}", s)).toBe("1,235");
    expect(render("{{ traits.text | number: 1 }}", s)).toBe("42.0");
    expect(render("{{ traits.neg | number }}", s)).toBe("-9,876.54");
    expect(render("{{ traits.word | number }}", s)).toBe("n/a");
    expect(formatNumber(-0.001, 2)).toBe("0.00");
    expect(formatNumber(999, null)).toBe("999");
  });

  it("allows | and }} inside a quoted default", () => {
    expect(render('{{ traits.x | default: "a | b }} c" }}', { traits: {} })).toBe("a | b }} c");
    expect(render("{{ traits.x | default: 'it\\'s' }}", { traits: {} }, "text")).toBe("it's");
  });

  it("reads own properties only, never the prototype chain", () => {
    const proto = { secret: "inherited" };
    const traits = Object.create(proto) as Record<string, unknown>;
    expect(render("[{{ traits.secret }}]", { traits })).toBe("[]");
    expect(render("[{{ traits.toString }}|{{ traits.hasOwnProperty }}]", { traits: {} })).toBe("[|]");
  });

  it("refuses code, reserved paths and bad syntax at compile time, with a message", () => {
    expect(compileError("{{ constructor.constructor }}")).toContain("constructor");
    expect(compileError("{{ traits.__proto__.x }}")).toContain("__proto__");
    expect(compileError("{{ traits.prototype }}")).toContain("prototype");
    expect(compileError("{{ alert(1) }}")).not.toBeNull();
    expect(compileError("{{ traits['x'] }}")).not.toBeNull();
    expect(compileError("{{ traits.x | exec }}")).toContain('unknown filter "exec"');
    expect(compileError("{{ traits.x | truncate: 0 }}")).toContain("truncate");
    expect(compileError("{{ traits.x | default: there }}")).toContain("default");
    expect(compileError("{{ traits.x | upcase: 2 }}")).toContain("no argument");
    expect(compileError("Hello {{ traits.x")).toContain("unclosed");
    expect(compileError("{{ }}")).not.toBeNull();
    expect(compileError("{{ traits..x }}")).not.toBeNull();
  });

  it("keeps plain text, stray braces included, as it is", () => {
    expect(render("no placeholders } here }}", {})).toBe("no placeholders } here }}");
    expect(render("", {})).toBe("");
  });
});

describe("compileJsonTemplate", () => {
  const compile = (value: unknown) => {
    const c = compileJsonTemplate(value);
    if (!c.ok) throw new Error(`${c.path}: ${c.error}`);
    return c.render;
  };

  it("keeps a lone placeholder's type and renders other strings as text", () => {
    const render = compile({
      n: "{{ traits.count }}",
      b: "{{ traits.vip }}",
      list: "{{ traits.tags }}",
      s: 'Hi {{ traits.name | default: "you" }}',
      d: '{{ traits.x | default: "none" }}',
      missing: "{{ traits.x }}",
      up: "{{ traits.count | number: 1 }}",
      nested: [{ title: "{{ traits.name }}!", fixed: 7, flag: true, nothing: null }],
    });
    expect(render({ traits: { count: 3, vip: false, tags: ["a", "b"], name: "<Ana>" } })).toEqual({
      n: 3,
      b: false,
      list: ["a", "b"],
      s: "Hi <Ana>",
      d: "none",
      missing: null,
      up: "3.0",
      nested: [{ title: "<Ana>!", fixed: 7, flag: true, nothing: null }],
    });
  });

  it("renders fresh objects each time, and keeps a '__proto__' key as data", () => {
    const payload = JSON.parse(
      '{"__proto__": {"polluted": "{{ traits.x }}"}, "a": "{{ traits.x }}"}',
    ) as unknown;
    const render = compile(payload);
    const one = render({ traits: { x: 1 } }) as Record<string, unknown>;
    const two = render({ traits: { x: 2 } }) as Record<string, unknown>;
    expect(Object.getPrototypeOf(one)).toBe(Object.prototype);
    expect(Object.hasOwn(one, "__proto__")).toBe(true);
    expect(one.a).toBe(1);
    expect(two.a).toBe(2);
  });

  it("names the path of a bad template", () => {
    const c = compileJsonTemplate({ hero: { items: ["ok", "{{ traits.x | exec }}"] } });
    expect(c.ok).toBe(false);
    if (!c.ok) {
      expect(c.path).toBe("hero.items[1]");
      expect(c.error).toContain("exec");
    }
    const n = compileJsonTemplate({ a: Number.NaN });
    expect(n.ok ? null : n.path).toBe("a");
    const f = compileJsonTemplate({ a: () => 1 });
    expect(f.ok).toBe(false);
  });
});

describe("escape", () => {
  it("escapes the five HTML specials, for text and attributes", () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    expect(escapeAttr(`" onmouseover='x'`)).toBe("&quot; onmouseover=&#39;x&#39;");
  });
  it("JSON inside an inline script cannot close the script and still parses back", () => {
    const value = { utm: "</script><script>alert(1)</script><!--&\u2028\u2029" };
    const out = jsonForInlineScript(value);
    expect(out).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(out)).toEqual(value);
    expect(jsonForInlineScript(undefined)).toBe("null");
    expect(JSON.parse(`"${escapeJsonString('a"b\\c</script>')}"`)).toBe('a"b\\c</script>');
  });
});
