import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";

const fixture = fileURLToPath(new URL("./fixtures/cluster.mjs", import.meta.url));

export interface FixtureEvent {
  event: "listening" | "setup-error";
  id?: number;
  pid?: number;
  port?: number;
  code?: string;
  message?: string;
}

/** A forked Node cluster (test/fixtures/cluster.mjs) and the events its primary prints. */
export class ClusterFixture {
  readonly events: FixtureEvent[] = [];
  readonly #primary: ChildProcess;
  readonly #waiters = new Set<() => void>();

  private constructor(primary: ChildProcess) {
    this.#primary = primary;
    createInterface({ input: primary.stdout! }).on("line", (line) => {
      try {
        this.events.push(JSON.parse(line) as FixtureEvent);
      } catch {
        return; // not one of the fixture's lines
      }
      for (const wake of this.#waiters) wake();
    });
  }

  static start(env: Record<string, string>): ClusterFixture {
    const primary = spawn(process.execPath, [fixture], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
    return new ClusterFixture(primary);
  }

  /** Waits until `count` events match `predicate`, failing after `timeoutMs` with what was awaited. */
  async waitFor(what: string, predicate: (event: FixtureEvent) => boolean, count = 1, timeoutMs = 20_000): Promise<FixtureEvent[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const matching = this.events.filter(predicate);
      if (matching.length >= count) return matching;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (got ${matching.length} of ${count})`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.#waiters.add(wake);
      });
    }
  }

  /** The first `count` workers that listened (restarts come later in `events`). */
  async workers(count: number): Promise<Array<{ id: number; pid: number; port: number }>> {
    const listening = await this.waitFor(`${count} workers listening`, (e) => e.event === "listening", count);
    return listening.map(({ id, pid, port }) => ({ id: id!, pid: pid!, port: port! }));
  }

  async stop(): Promise<void> {
    if (this.#primary.exitCode !== null || this.#primary.signalCode !== null) return;
    const exited = once(this.#primary, "exit");
    this.#primary.kill("SIGTERM");
    await exited;
  }
}

export async function getJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A real socket.io-client over WebSocket; rejects on connect_error or after 10 s. */
export function connectClient(port: number, userId: string, clients: ClientSocket[]): Promise<ClientSocket> {
  const socket = connect(`http://127.0.0.1:${port}`, { auth: { userId }, reconnection: false, forceNew: true, transports: ["websocket"] });
  clients.push(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${userId} did not connect to port ${port} within 10 s`)), 10_000);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Counts the "user has connected" / "user has disconnected" events one client receives, per user. */
export function recordTransitions(socket: ClientSocket) {
  const joins = new Map<string, number>();
  const leaves = new Map<string, number>();
  socket.on("user has connected", (userId: string) => joins.set(userId, (joins.get(userId) ?? 0) + 1));
  socket.on("user has disconnected", (userId: string) => leaves.set(userId, (leaves.get(userId) ?? 0) + 1));
  return { joins, leaves };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
