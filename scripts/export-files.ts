/**
 * The export's files in the local R2 store that `npm start` (wrangler dev) writes to
 * (.wrangler/state/v3/r2, bucket northstar-export), read through Miniflare's own R2.
 *
 *   npm run export:ls [-- <prefix>]        every file: key, lines, bytes (e.g. -- type=event/)
 *   npm run export:cat [-- <prefix|key>]   their lines, gunzipped: one JSON record per line
 *
 * wrangler's `r2 object` command has get and put but no list, hence this script.
 */
import { gunzipSync } from "node:zlib";
import { Miniflare } from "miniflare";

const [command = "ls", prefix = ""] = process.argv.slice(2);
const mf = new Miniflare({
  modules: true,
  script: "export default {}",
  r2Buckets: { EXPORT_BUCKET: "northstar-export" },
  r2Persist: process.env.EXPORT_R2_PERSIST ?? ".wrangler/state/v3/r2",
});
try {
  const bucket = await mf.getR2Bucket("EXPORT_BUCKET");
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, cursor, include: ["customMetadata"] });
    for (const object of page.objects) {
      if (command === "cat") {
        const body = await bucket.get(object.key);
        if (body) process.stdout.write(gunzipSync(Buffer.from(await body.arrayBuffer())));
      } else console.log(`${object.key}\t${object.customMetadata?.lines ?? "?"} lines\t${object.size} B`);
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
} finally {
  await mf.dispose();
}
