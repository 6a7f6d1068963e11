import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The workspace's publishable packages: each folder of packages/ whose
 * package.json is not private, found on disk so that a new package is packed,
 * installed and has its README checked without being listed here.
 */
export const PACKAGES: readonly string[] = (() => {
  const dir = fileURLToPath(new URL("../../packages", import.meta.url));
  return readdirSync(dir)
    .sort()
    .filter((name) => {
      const manifest = join(dir, name, "package.json");
      return existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { private?: boolean }).private !== true;
    });
})();
export type PackageDir = string;

/** Runs `task` over `items`, at most `limit` at a time; settles every one, in order. */
export async function inPool<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      try {
        results[index] = { status: "fulfilled", value: await task(items[index] as T) };
      } catch (reason) {
        results[index] = { status: "rejected", reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Progress lines: the packaging test takes a while, so it says what it is doing. */
export function progress(message: string): void {
  process.stdout.write(`[packaging] ${message}\n`);
}

/**
 * The environment of every child process: no NODE_PATH or NODE_OPTIONS that
 * could make Node find the workspace's modules, and none of vitest's own
 * variables (a nested vitest would think it is a worker).
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key === "NODE_PATH" || key === "NODE_OPTIONS" || key.startsWith("VITEST") || key === "TEST") continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd: string;
  /** What is being run, for the error messages. */
  what: string;
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs a command to completion within a deadline; past it, the whole process
 * group is killed and the promise rejects saying what did not finish.
 * Resolves with the exit status: callers decide what a failure means.
 */
export function run(command: string, args: string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? cleanEnv(),
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group, so a deadline also ends what it forked
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      killGroup(child);
      reject(
        new Error(
          `${options.what} did not finish within ${options.timeoutMs} ms\n--- stdout\n${stdout}\n--- stderr\n${stderr}`,
        ),
      );
    }, options.timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`${options.what} could not start: ${error.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      killGroup(child); // whatever it left behind (cluster workers, a stray server)
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs a command and rejects, with its output, unless it exits 0. */
export async function runOk(command: string, args: string[], options: RunOptions): Promise<RunResult> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(
      `${options.what} failed (exit ${result.code ?? result.signal})\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
    );
  }
  return result;
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // the group is already gone
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

export interface ThrowawayRedis {
  url: string;
  stop(): Promise<void>;
}

/**
 * A throwaway `redis-server` on a free port, as the Redis package's tests
 * start theirs: no persistence, gone when stopped. Ready once it logs that it
 * accepts connections.
 */
export async function startRedis(timeoutMs = 15_000): Promise<ThrowawayRedis> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const ready = new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`redis-server on port ${port} did not accept connections within ${timeoutMs} ms\n${output}`));
      }, timeoutMs);
      child.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      child.on("error", (error) => {
        clearTimeout(timer);
        reject(new Error(`redis-server could not start (is Redis installed? apt-get install redis-server): ${error.message}`));
      });
      child.on("exit", () => {
        clearTimeout(timer);
        resolve(false); // e.g. the port was taken between freePort() and the bind
      });
    });
    if (await ready) {
      return {
        url: `redis://127.0.0.1:${port}`,
        async stop() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = once(child, "exit");
          child.kill("SIGKILL");
          await exited;
        },
      };
    }
    if (attempt === 3) throw new Error(`redis-server exited before accepting connections, 3 times\n${output}`);
  }
}
