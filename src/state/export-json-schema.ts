import * as z from "zod";
import { ExportRecordSchema } from "./export-record.ts";

/**
 * docs/export.schema.json, generated from the zod schema (`npm run export:schema`). A module of its
 * own so that the worker, which never imports it, does not bundle zod's JSON Schema generator.
 */
/** docs/export.schema.json: the JSON Schema of one exported line, generated from the zod schema. */
export function exportJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ExportRecordSchema, { target: "draft-2020-12", io: "output" }) as Record<
    string,
    unknown
  >;
  return {
    ...schema,
    $id: "https://northstar.dev/schemas/export/v1.json",
    title: "Northstar export line v1 (one JSON object per line of type=<kind>/date=…/hour=…/*.ndjson.gz)",
  };
}
