import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { request, type Agent, type IncomingMessage } from "node:http";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { io as connect, type ManagerOptions, type Socket as ClientSocket, type SocketOptions } from "socket.io-client";

const fixture = fileURLToPath(new URL("./fixtures/cluster.mjs", import.meta.url));

export interface FixtureWorker {
  id: number;
  pid: number;
  setupMasterError?: string;
}

export interface StickyCluster {
  url: string;
  port: number;
  workers: FixtureWorker[];
  /** Worker ids that exited, in order. */
  exited: number[];
  connect(options?: Partial<ManagerOptions & SocketOptions>): ClientSocket;
  close(): Promise<void>;
}

const START_DEADLINE_MS = 20_000;

/** Starts the fixture's cluster (its primary and its workers) and waits until it listens. */
export async function startCluster(env: Record<string, string> = {}): Promise<StickyCluster> {
  const child: ChildProcess = spawn(process.execPath, [fixture], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  const exited: number[] = [];
  const clients: ClientSocket[] = [];
  createInterface({ input: child.stderr! }).on("line", (line) => output.push(line));
  const listening = await new Promise<{ port: number; workers: FixtureWorker[] }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the sticky cluster did not listen within ${START_DEADLINE_MS} ms:\n${output.join("\n")}`)), START_DEADLINE_MS);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let parsed: { event?: string; port?: number; workers?: FixtureWorker[]; id?: number };
      try {
        parsed = JSON.parse(line);
      } catch {
        return void output.push(line);
      }
      if (parsed.event === "exit" && parsed.id !== undefined) exited.push(parsed.id);
      if (parsed.event === "listening") {
        clearTimeout(timer);
        resolve({ port: parsed.port!, workers: parsed.workers! });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the sticky cluster exited with ${code} before listening:\n${output.join("\n")}`));
    });
  });
  const url = `http://127.0.0.1:${listening.port}`;
  return {
    url,
    port: listening.port,
    workers: listening.workers,
    exited,
    connect(options = {}) {
      const socket = connect(url, { forceNew: true, reconnection: false, ...options });
      clients.push(socket);
      return socket;
    },
    async close() {
      for (const socket of clients) socket.close();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await once(child, "exit", { signal: AbortSignal.timeout(10_000) }).catch(() => child.kill("SIGKILL")); // stuck past its deadline: killed
      }
    },
  };
}

/** Resolves with the event's first argument, or rejects after `ms` saying what did not come. */
export function nextEvent<T = unknown>(socket: ClientSocket, event: string, what: string, ms = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, listener);
      reject(new Error(`${what}: no "${event}" within ${ms} ms`));
    }, ms);
    const listener = (value: T) => {
      clearTimeout(timer);
      resolve(value);
    };
    socket.once(event, listener);
  });
}

export interface WhoAmI {
  workerId: number;
  pid: number;
  sid: string;
}

/** Asks the socket's worker who it is. */
export const whoami = (socket: ClientSocket, ms = 10_000): Promise<WhoAmI> => socket.timeout(ms).emitWithAck("whoami");

export interface Response {
  statusCode: number;
  headers: IncomingMessage["headers"];
  body: string;
}

/** One HTTP request to the cluster, with a deadline. */
export function send(options: { port: number; method: string; path: string; headers?: Record<string, string>; agent?: Agent }, body?: string, ms = 10_000): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers, ...(body === undefined ? {} : { "content-length": String(Buffer.byteLength(body)) }) };
    const req = request({ host: "127.0.0.1", ...options, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.setTimeout(ms, () => req.destroy(new Error(`${options.method} ${options.path}: no answer within ${ms} ms`)));
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}
