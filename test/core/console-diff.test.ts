import { describe, expect, it } from "vitest";
import { diffLines } from "../../src/console/diff.ts";

/** Hunks as [first old line, lines], an unchanged line written bare, a change with its - or +. */
const render = (before: string, after: string, context = 1) =>
  diffLines(before, after, context).map((h) => [
    h.start,
    h.lines.map((l) => `${l.kind === " " ? "" : l.kind}${l.text}`),
  ]);

describe("the console's line diff", () => {
  it("shows a changed line as removed then added, with the context asked for", () => {
    expect(render("a\nb\nc\nd\ne", "a\nb\nC\nd\ne")).toEqual([[2, ["b", "-c", "+C", "d"]]]);
  });

  it("keeps changes far apart in separate hunks and near ones in one", () => {
    const before = ["1", "2", "3", "4", "5", "6", "7", "8"].join("\n");
    expect(render(before, before.replace("2", "two").replace("7", "seven"))).toEqual([
      [1, ["1", "-2", "+two", "3"]],
      [6, ["6", "-7", "+seven", "8"]],
    ]);
    expect(render(before, before.replace("2", "two").replace("4", "four"))).toEqual([
      [1, ["1", "-2", "+two", "3", "-4", "+four", "5"]],
    ]);
  });

  it("finds inserted and deleted lines among unchanged ones", () => {
    expect(render("a\nb\nc", "a\nx\nb\nc")).toEqual([[1, ["a", "+x", "b"]]]);
    expect(render("a\nb\nc", "a\nc")).toEqual([[1, ["a", "-b", "c"]]]);
  });

  it("has no hunk for equal texts", () => {
    expect(diffLines("same\ntext", "same\ntext")).toEqual([]);
  });
});
