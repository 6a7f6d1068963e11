import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { io as connect, type ManagerOptions, type Socket as ClientSocket, type SocketOptions } from "socket.io-client";

const main = fileURLToPath(new URL("../dist/main.js", import.meta.url));

/** A secret as long as the demo requires (32 bytes), for demos whose tokens a test signs itself. */
export const TEST_SECRET = "test-secret-of-at-least-32-bytes-0123456789";

export interface DemoProcess {
  child: ChildProcess;
  port: number;
  url: string;
  /** `http://127.0.0.1:<port>/metrics`, when started with `--metrics-port`. */
  metricsUrl: string | undefined;
  /** Everything the demo printed, for failure messages. */
  output: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts the built demo as a child process on a free port; resolves once it listens. */
export async function startDemo(args: string[] = [], env: Record<string, string> = {}): Promise<DemoProcess> {
  const child = spawn(process.execPath, [main, "--port", "0", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (line) => output.push(line));
  const lines = createInterface({ input: child.stdout! });
  let metricsUrl: string | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not start within 20 s:\n${output.join("\n")}`)), 20_000);
    lines.on("line", (line) => {
      output.push(line);
      // printed before the banner
      metricsUrl ??= /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(line)?.[1];
      const match = /listening on http:\/\/localhost:(\d+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once("exit", (code) => reject(new Error(`the demo exited with ${code}:\n${output.join("\n")}`)));
  });
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    metricsUrl,
    output,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = (await once(child, "exit", { signal: AbortSignal.timeout(20_000) }).catch(() => {
        child.kill("SIGKILL");
        throw new Error(`waited 20000 ms for the demo process to exit after ${signal} (killed)`);
      })) as [number | null];
      return code;
    },
  };
}

/** fetch() with a deadline whose error names the request. */
export async function fetchWithin(url: string, init: RequestInit = {}, ms = 10_000): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(ms) });
  } catch (error) {
    throw new Error(`${init.method ?? "GET"} ${url} got no answer within ${ms} ms: ${(error as Error).message}`);
  }
}

export async function login(url: string, userId: unknown): Promise<string> {
  const res = await fetchWithin(`${url}/api/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId }),
  });
  const body = (await res.json()) as { token?: string; error?: string };
  if (!res.ok || !body.token) throw new Error(`login failed: ${res.status} ${body.error}`);
  return body.token;
}

/** The presence routes need a signed-in reader: one login per demo (origin), kept for its later reads. */
const readers = new Map<string, Promise<string>>();
function readerToken(url: string): Promise<string> {
  const { origin } = new URL(url);
  let token = readers.get(origin);
  if (!token) {
    token = login(origin, "presence-reader");
    readers.set(origin, token);
    token.catch(() => readers.delete(origin));
  }
  return token;
}

const isPresenceRoute = (url: string) => /^\/api\/(presence|rooms)(\/|$)/.test(new URL(url).pathname);

/**
 * GET as JSON. The presence routes get a reader's bearer token unless
 * `token` says which to send (`null`: none); the other routes get none.
 */
export async function getJson<T = Record<string, unknown>>(url: string, token?: string | null): Promise<{ status: number; body: T }> {
  const bearer = token === null ? undefined : (token ?? (isPresenceRoute(url) ? await readerToken(url) : undefined));
  const res = await fetchWithin(url, bearer === undefined ? {} : { headers: { authorization: `Bearer ${bearer}` } });
  return { status: res.status, body: (await res.json()) as T };
}

export function connectClient(
  url: string,
  token: string | undefined,
  options: Partial<ManagerOptions & SocketOptions> = {},
): Promise<ClientSocket> {
  const socket = connect(url, { auth: token === undefined ? {} : { token }, forceNew: true, reconnection: false, ...options });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`a Socket.IO client of ${url} did not connect within 10 s`));
    }, 10_000);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (error) => {
      clearTimeout(timer);
      reject(error);
      socket.close();
    });
  });
}

/** Retries `check` until it passes; past the deadline, fails with what was awaited and the last failure. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 10_000, what = "a condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms: ${(error as Error).message}`, { cause: error });
      await sleep(50);
    }
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The value of one Prometheus sample, e.g. `presence_users_online` or `presence_transitions_total{type="connected"}`. */
export function metricSample(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no sample ${name} in:\n${text.slice(0, 2000)}`);
  return Number(line.slice(name.length + 1));
}

/** One sample of a demo's `/metrics` (started with `--metrics-port`). */
export async function metric(demo: DemoProcess, name: string): Promise<number> {
  if (!demo.metricsUrl) throw new Error("this demo was started without --metrics-port");
  return metricSample(await (await fetchWithin(demo.metricsUrl)).text(), name);
}
