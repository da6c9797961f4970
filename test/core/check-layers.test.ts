import { describe, expect, it } from "vitest";
import { importsOf, layerProblems } from "../../scripts/check-layers.ts";

// The layering check `npm run check` runs (scripts/check-layers.ts), on small trees made here.
const tree = (files: Record<string, string>) => new Map(Object.entries(files));

describe("layering check", () => {
  it("reads value, type, re-export and dynamic imports, and not imports written in comments", () => {
    const text = [
      'import { a } from "./a.ts";',
      'import type { B } from "../b.ts";',
      'export { c } from "./c.ts";',
      'const d = await import("./d.ts");',
      'import * as z from "zod";',
      '/** @example import { e } from "./e.ts"; */',
      '// import { f } from "./f.ts";',
    ].join("\n");
    expect(importsOf(text)).toEqual(["./a.ts", "../b.ts", "./c.ts", "./d.ts"]);
  });

  it("passes a tree whose imports all point down the layers", () => {
    expect(
      layerProblems(
        tree({
          "core/model.ts": "export type M = 1;",
          "rules/compile.ts": 'import type { M } from "../core/model.ts";',
          "http/app.ts": 'import { x } from "../rules/compile.ts";',
          "index.ts": 'import { handle } from "./http/app.ts";',
        }),
      ),
    ).toEqual([]);
  });

  it("names a type-only cycle between two files", () => {
    const problems = layerProblems(
      tree({
        "state/a.ts": 'import type { B } from "./b.ts";',
        "state/b.ts": 'import type { A } from "./a.ts";',
      }),
    );
    expect(problems).toEqual(["import cycle between files: state/a.ts → state/b.ts"]);
  });

  it("names an import against the layer order and the folder cycle it makes", () => {
    const problems = layerProblems(
      tree({
        "core/decide.ts": 'import { intentOf } from "../rules/conditions.ts";',
        "rules/conditions.ts": 'import type { M } from "../core/model.ts";',
        "core/model.ts": "export type M = 1;",
      }),
    );
    expect(problems).toContain("core/decide.ts imports rules/conditions.ts: core may not import rules");
    expect(problems).toContain("import cycle between folders: core → rules");
  });
});
