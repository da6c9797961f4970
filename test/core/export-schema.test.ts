import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { exportJsonSchema } from "../../src/state/export-json-schema.ts";
import {
  deliveryRecord,
  EXPORT_KINDS,
  ExportRecordSchema,
  erasureRecord,
  eventRecord,
  exposureRecord,
  identityLinkRecord,
  messageRecord,
} from "../../src/state/export-record.ts";

const ROOT = new URL("../../", import.meta.url);
const read = (path: string) => readFileSync(new URL(path, ROOT), "utf8");

describe("the export's schema", () => {
  it("docs/export.schema.json is what the zod schema generates (regenerate: npm run export:schema)", () => {
    expect(JSON.parse(read("docs/export.schema.json"))).toEqual(
      JSON.parse(JSON.stringify(exportJsonSchema())),
    );
  });

  it("docs/export.md shows one example line of each kind, and each is valid", () => {
    const lines = read("docs/export.md")
      .split("\n")
      .filter((line) => line.startsWith('{"v":'));
    const kinds = lines.map((line) => ExportRecordSchema.parse(JSON.parse(line)).kind);
    expect([...kinds].sort()).toEqual([...EXPORT_KINDS].sort());
  });

  it("the builders make valid lines of each kind, timed in UTC, with the documented stable ids", () => {
    const at = Date.UTC(2026, 10, 29, 7, 5);
    const records = [
      eventRecord("v1", { id: "e1", type: "purchase", ts: at, channel: "web", props: { value: 42 } }),
      exposureRecord(
        "v1",
        at,
        { placement: "home-hero", experience: "hero-ab", experiment: "hero-test", variant: "bold" },
        "2026.11.24-1",
      ),
      identityLinkRecord("anon", "u_1", at),
      erasureRecord("u_1", ["anon", "u_1"], at),
      messageRecord(
        "u_1",
        {
          key: "win-back-1.first-offer",
          journey: "win-back",
          instance: "win-back-1",
          step: "first-offer",
          channel: "email",
          placement: "email-hero",
          experience: "email-winback",
          experiment: null,
          variant: null,
          rulesVersion: "2026.11.24-1",
          dryRun: false,
        },
        at,
      ),
      deliveryRecord(
        "u_1",
        {
          key: "win-back-1.first-offer",
          journey: "win-back",
          channel: "email",
          outcome: "dead_lettered",
          reason: "destination answered 410",
          dryRun: false,
        },
        at,
      ),
    ];
    for (const record of records) expect(ExportRecordSchema.parse(record)).toEqual(record);
    expect(records.map((record) => [record.kind, record.at])).toEqual(
      EXPORT_KINDS.map((kind) => [kind, "2026-11-29T07:05:00.000Z"]),
    );
    expect(erasureRecord("u_1", ["anon", "u_1"], at).ids).toEqual(["u_1", "anon"]);
    // The ids docs/export.md promises: the kind, then the parts that name the fact.
    expect(records.map((record) => record.id)).toEqual([
      "event:v1:e1",
      `exposure:v1:${at}:home-hero`,
      "identity_link:anon:u_1",
      `erasure:u_1:${at}`,
      "message:u_1:win-back-1.first-offer",
      "delivery:u_1:win-back-1.first-offer",
    ]);
  });
});
