import { sleep, waitFor } from "@presence/core/testing";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Transition } from "@presence/core";
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

export interface WorkerInfo {
  id: number;
  pid: number;
  port: number;
}

/** What the primary reports (through any worker): announcements not yet made, stores waiting out the grace. */
export interface PrimaryState {
  pendingAnnouncements: number;
  storesInGrace: number;
  reassigned: number;
  connections: number;
}

/** Polls `check` until it stops throwing; fails after `timeoutMs` saying what it waited for, with the last error. */
export const until = <T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 25): Promise<T> => waitFor(what, check, timeoutMs, intervalMs);

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

  /** The primary's pid, to stop it (SIGSTOP) as a slow primary. */
  get primaryPid(): number {
    return this.#primary.pid!;
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
  async workers(count: number): Promise<WorkerInfo[]> {
    const listening = await this.waitFor(`${count} workers listening`, (e) => e.event === "listening", count);
    return listening.slice(0, count).map(({ id, pid, port }) => ({ id: id!, pid: pid!, port: port! }));
  }

  async stop(): Promise<void> {
    if (this.#primary.exitCode !== null || this.#primary.signalCode !== null) return;
    const exited = once(this.#primary, "exit");
    this.#primary.kill("SIGCONT"); // in case a test left it stopped
    this.#primary.kill("SIGTERM");
    await exited;
  }
}

export async function getJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export const primaryState = async (port: number) => (await getJson(port, "/primary")).body as unknown as PrimaryState;

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

/** Every transition one client is told of, per user, in the order received: "connected", "joined:room:lobby", ... with versions. */
export function recordTransitions(socket: ClientSocket) {
  const byUser = new Map<string, Transition[]>();
  socket.on("presence:transition", (transition: Transition) => {
    const log = byUser.get(transition.userId) ?? [];
    log.push(transition);
    byUser.set(transition.userId, log);
  });
  const kinds = (userId: string) => (byUser.get(userId) ?? []).map((t) => (t.type === "joined" || t.type === "left" ? `${t.type}:${t.room}` : t.type));
  const versions = (userId: string) => (byUser.get(userId) ?? []).map((t) => t.version!);
  const count = (type: Transition["type"], prefix = "") =>
    [...byUser.values()].flat().filter((t) => t.type === type && t.userId.startsWith(prefix)).length;
  return { byUser, kinds, versions, count };
}

export type Recorder = ReturnType<typeof recordTransitions>;

/** Strictly increasing: the order the decider gave, heard in that order. */
export function increasing(versions: number[]): boolean {
  return versions.every((version, i) => Number.isSafeInteger(version) && (i === 0 || version > versions[i - 1]!));
}

/**
 * Waits until everything decided has been announced and every observer was
 * told: the primary has nothing pending (and, with `graces`, no store in its
 * leave grace), then each observer's worker does a round trip to the primary
 * (which delivers every broadcast the primary forwarded to it before) and
 * acknowledges on the observer's own socket (which delivers every frame
 * before it).
 */
export async function settle(port: number, observers: ClientSocket[], what: string, { graces = true, timeoutMs = 15_000 } = {}): Promise<void> {
  await until(
    `the primary to have nothing pending (${what})`,
    async () => {
      const state = await primaryState(port);
      if (state.pendingAnnouncements !== 0 || (graces && state.storesInGrace !== 0)) throw new Error(`primary state ${JSON.stringify(state)}`);
    },
    timeoutMs,
  );
  await Promise.all(observers.map((observer) => observer.timeout(10_000).emitWithAck("sync")));
}

export { sleep };
