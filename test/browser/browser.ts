import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import sparticuz from "@sparticuz/chromium";
import { type Browser, chromium } from "playwright-core";

/**
 * The browser the tests drive, found so that a fresh clone needs nothing but `npm ci`:
 * `CHROMIUM_PATH` if set, else a Chromium or Chrome on the machine, else the Chromium that
 * `@sparticuz/chromium` carries inside its npm package (unpacked once, never downloaded).
 */
export type BrowserChoice =
  | { readonly source: "CHROMIUM_PATH" | "system"; readonly path: string }
  | { readonly source: "@sparticuz/chromium" };

/** Names a Chromium or Chrome goes by on PATH, in the order we prefer them. */
const SYSTEM_NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];

/** Where those names live when they are not on PATH (a trimmed PATH in a CI job or an IDE). */
const USUAL_DIRS = ["/usr/bin", "/usr/local/bin", "/snap/bin"];

/** Browsers installed under a name of their own (Debian's real binary, Chrome's, macOS apps). */
const USUAL_EXECUTABLES = [
  "/usr/lib/chromium/chromium",
  "/opt/google/chrome/chrome",
  "/Applications/Chromium.app/Contents/MacOS/Chromium",
  "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
];

/** Flags for a headless Chromium on a machine with no network beyond loopback. */
const OUR_ARGS = [
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Picks the browser from the environment; `isExecutable` is a parameter so the order can be tested
 * without the machine's browsers. A `CHROMIUM_PATH` that is not executable is an error, not a reason
 * to quietly test another browser than the one asked for.
 */
export function chooseBrowser(
  env: Readonly<Record<string, string | undefined>>,
  isExecutable: (path: string) => boolean,
): BrowserChoice {
  const asked = env.CHROMIUM_PATH;
  if (asked) {
    if (!isExecutable(asked)) throw new Error(`CHROMIUM_PATH=${asked} is not an executable file`);
    return { source: "CHROMIUM_PATH", path: asked };
  }
  const dirs = [...(env.PATH ?? "").split(delimiter).filter(Boolean), ...USUAL_DIRS];
  const candidates = [
    ...SYSTEM_NAMES.flatMap((name) => dirs.map((dir) => join(dir, name))),
    ...USUAL_EXECUTABLES,
  ];
  const path = candidates.find(isExecutable);
  return path ? { source: "system", path } : { source: "@sparticuz/chromium" };
}

/**
 * Unpacks @sparticuz/chromium's browser into a directory of its own, keyed by the package's version.
 * The package itself unpacks into `$TMPDIR/chromium` and reuses whatever file is there, so a run
 * killed mid-unpack, two test runs at once, or another project's version would hand Playwright a
 * broken or wrong binary. Here each unpack goes into a fresh directory, pointed at by TMPDIR for the
 * duration of the call, and is renamed into place only once complete: a rename is atomic, so readers
 * see a whole browser or none.
 */
async function unpackSparticuz(): Promise<string> {
  if (process.platform !== "linux" || process.arch !== "x64") {
    throw new Error(
      `no Chromium or Chrome found, and @sparticuz/chromium only carries one for Linux x86-64 (this is ${process.platform} ${process.arch}): install Chrome or set CHROMIUM_PATH`,
    );
  }
  const entry = createRequire(import.meta.url).resolve("@sparticuz/chromium");
  const manifest = JSON.parse(readFileSync(join(dirname(entry), "../../package.json"), "utf8")) as {
    version: string;
  };
  const home = tmpdir();
  const unpacked = join(home, `northstar-chromium-${manifest.version}`);
  const executable = join(unpacked, "chromium");
  if (existsSync(executable)) return executable;

  const staging = mkdtempSync(join(home, "northstar-chromium-unpacking-"));
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = staging;
  let path: string;
  try {
    // Without an argument it reads the files inside its own package: nothing is downloaded.
    path = await sparticuz.executablePath();
  } finally {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
  }
  if (path !== join(staging, "chromium")) {
    rmSync(staging, { recursive: true, force: true });
    throw new Error(`@sparticuz/chromium unpacked to ${path}, not into ${staging} as expected`);
  }
  try {
    renameSync(staging, unpacked);
  } catch (error) {
    // Another run finished first: its copy is as good as ours.
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(executable)) throw error;
  }
  return executable;
}

/**
 * Flags of @sparticuz/chromium's list that suit AWS Lambda, not a test of what a shopper sees. Chromium
 * keeps only the last value of a repeated switch, so its feature lists would also replace Playwright's.
 */
const NOT_FOR_TESTS = new Set([
  "--headless", // Playwright's `headless: true` adds its own
  "--single-process", // needed inside Lambda's sandbox; here a second browser context dies with it
  "--disable-web-security", // a shopper's browser enforces CORS: so must the tests'
  "--allow-running-insecure-content",
  "--disable-site-isolation-trials",
  "--disable-features",
  "--enable-features",
]);

/** Its recommended flags, less those above, with ours. */
function sparticuzArgs(): string[] {
  // No WebGL in these tests: the CPU-rendered graphics stack is only dead weight.
  sparticuz.setGraphicsMode = false;
  const switchName = (arg: string) => arg.split("=")[0] ?? arg;
  const ours = new Set(OUR_ARGS.map(switchName));
  const theirs = sparticuz.args.filter(
    (arg) => !NOT_FOR_TESTS.has(switchName(arg)) && !ours.has(switchName(arg)),
  );
  return [...theirs, ...OUR_ARGS];
}

let announced = false;

/** Launches a headless Chromium for the tests (see {@link chooseBrowser} for which one). */
export async function launchBrowser(): Promise<Browser> {
  const choice = chooseBrowser(process.env, isExecutableFile);
  const executablePath = choice.source === "@sparticuz/chromium" ? await unpackSparticuz() : choice.path;
  const args = choice.source === "@sparticuz/chromium" ? sparticuzArgs() : OUR_ARGS;
  if (!announced) {
    announced = true;
    process.stderr.write(`browser tests: ${choice.source} Chromium at ${executablePath}\n`);
  }
  return chromium.launch({ executablePath, args, headless: true });
}
