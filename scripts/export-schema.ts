/**
 * docs/export.schema.json, the JSON Schema of one line of the export's files, generated from the
 * zod schema the consumer parses every message with (src/state/export-record.ts).
 *
 *   node scripts/export-schema.ts           regenerate it
 *   node scripts/export-schema.ts --check   exit 1 when the committed file is stale
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exportJsonSchema } from "../src/state/export-json-schema.ts";

const FILE = join(new URL("..", import.meta.url).pathname, "docs/export.schema.json");
const text = `${JSON.stringify(exportJsonSchema(), null, 2)}\n`;
if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = readFileSync(FILE, "utf8");
  } catch {}
  if (committed !== text) {
    console.error("docs/export.schema.json is stale: run node scripts/export-schema.ts");
    process.exit(1);
  }
} else {
  writeFileSync(FILE, text);
  console.log("wrote docs/export.schema.json");
}
