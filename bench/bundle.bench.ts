/**
 * The worker's size as `wrangler deploy` bundles it (DESIGN.md budget: ≤ 150 KB gzip). zod is
 * imported as a namespace (`import * as z`) everywhere, so the bundler drops what is never used
 * (its ~40 locales alone were 360 KB before).
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { buildNorthstar } from "./workerd.ts";

export async function run(): Promise<string[]> {
  const bundle = readFileSync(buildNorthstar());
  const gzip = gzipSync(bundle, { level: 9 }).length;
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  return [
    `worker bundle: ${kb(bundle.length)}, gzip ${kb(gzip)} (budget 150 KiB ${gzip <= 150 * 1024 ? "✓" : "✗"})`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const line of await run()) console.log(line);
}
