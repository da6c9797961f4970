import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Starts `wrangler dev` exactly as `npm start` does (the proxy in front of the demo shop), or with
 * `{ demo: false }` exactly as plain `wrangler dev` (`npm run dev`) does (the worker alone, fronting
 * the configured ORIGIN), on a free port with its own state directory, and stops it afterwards.
 */
export interface DevServer {
  readonly url: string;
  stop(): Promise<void>;
}

const ROOT = new URL("../..", import.meta.url).pathname;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startDevServer(
  vars: Record<string, string> = {},
  {
    demo = true,
    state = mkdtempSync(join(tmpdir(), "northstar-browser-")),
  }: {
    readonly demo?: boolean;
    /** Local state prepared beforehand (e.g. rules published into it); removed on stop as a fresh one is. */
    readonly state?: string;
  } = {},
): Promise<DevServer> {
  const port = await freePort();
  // The same arguments as package.json's `start` and `dev` scripts.
  const args = demo
    ? ["wrangler", "dev", "-c", "wrangler.toml", "-c", "demo/wrangler.toml", "--env", "demo"]
    : ["wrangler", "dev"];
  args.push("--port", String(port), "--ip", "127.0.0.1", "--persist-to", state, "--inspector-port", "0");
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  const child: ChildProcess = spawn("npx", args, {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout?.on("data", (d) => {
    output += String(d);
  });
  child.stderr?.on("data", (d) => {
    output += String(d);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited early:\n${output}`);
    try {
      const res = await fetch(`${url}/_ns/health`, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      process.kill(-child.pid!, "SIGTERM");
      throw new Error(`wrangler dev did not start in 90 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return {
    url,
    async stop() {
      const pid = child.pid;
      if (child.exitCode === null && pid) {
        // Waits for the exit itself rather than a fixed pause; a group that ignores SIGTERM is killed.
        const exited = new Promise((resolve) => child.once("exit", resolve));
        process.kill(-pid, "SIGTERM");
        const stubborn = setTimeout(() => process.kill(-pid, "SIGKILL"), 5_000);
        await exited;
        clearTimeout(stubborn);
      }
      rmSync(state, { recursive: true, force: true });
    },
  };
}
