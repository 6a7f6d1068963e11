import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { eventually as poll } from "@presence/core/testing";
import { io as connect, type ManagerOptions, type Socket as ClientSocket, type SocketOptions } from "socket.io-client";

const main = fileURLToPath(new URL("../dist/main.js", import.meta.url));

export interface DemoProcess {
  child: ChildProcess;
  port: number;
  url: string;
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
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not start:\n${output.join("\n")}`)), 20_000);
    lines.on("line", (line) => {
      output.push(line);
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
    output,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = (await once(child, "exit")) as [number | null];
      return code;
    },
  };
}

export async function login(url: string, userId: unknown): Promise<string> {
  const res = await fetch(`${url}/api/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId }),
  });
  const body = (await res.json()) as { token?: string; error?: string };
  if (!res.ok || !body.token) throw new Error(`login failed: ${res.status} ${body.error}`);
  return body.token;
}

export async function getJson<T = Record<string, unknown>>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
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
      reject(new Error("connect timed out"));
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

export const eventually = (check: () => unknown, timeoutMs = 10_000) => poll(check, timeoutMs, 50);

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
