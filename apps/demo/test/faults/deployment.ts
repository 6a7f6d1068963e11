import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { startRedisServer, type RedisServer } from "@presence/redis/testing";
import { io as connect, type ManagerOptions, type Socket as ClientSocket, type SocketOptions } from "socket.io-client";
import { expect } from "vitest";
import { TEST_SECRET, getJson, login, sleep, startDemo, type DemoProcess } from "../demo-process";

export const TIMING = { heartbeatMs: 250, leaseTimeoutMs: 1000 };

/** The pids of a demo instance's workers. */
export function workerPids(demo: DemoProcess): number[] {
  try {
    return execFileSync("pgrep", ["-P", String(demo.child.pid)], { encoding: "utf8" }).split("\n").filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * Two demo instances in redis mode (2 workers each) on one real Redis, and a
 * load generator that records which connections are really open: the truth
 * that presence must converge to.
 */
export class Deployment {
  redis!: RedisServer;
  instances: DemoProcess[] = [];
  readonly clients = new Set<ClientSocket>();
  readonly #tokens = new Map<string, string>();
  readonly #userOf = new WeakMap<ClientSocket, string>();

  static async start(extraFlags: string[] = [], instances = 2): Promise<Deployment> {
    const deployment = new Deployment();
    deployment.redis = await startRedisServer();
    const flags = [
      "--mode", "redis", "--workers", "2", "--redis-url", deployment.redis.url, "--secret", TEST_SECRET,
      "--heartbeat-ms", String(TIMING.heartbeatMs), "--lease-timeout-ms", String(TIMING.leaseTimeoutMs),
      "--rate-limit", "0", "--login-rate-limit", "0", "--max-connections-per-user", "0", ...extraFlags,
    ];
    deployment.instances = await Promise.all(Array.from({ length: instances }, () => startDemo(flags)));
    return deployment;
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.close();
    for (const instance of this.instances) {
      for (const pid of [instance.child.pid!, ...workerPids(instance)]) {
        try {
          process.kill(pid, "SIGCONT");
        } catch {}
      }
    }
    await Promise.all(this.instances.map((instance) => instance.stop()));
    if (this.redis.process.signalCode === "SIGSTOP") this.redis.signal("SIGCONT");
    await this.redis.stop();
  }

  async token(userId: string, instance = this.instances[0]!): Promise<string> {
    let token = this.#tokens.get(userId);
    if (!token) {
      token = await login(instance.url, userId);
      this.#tokens.set(userId, token);
    }
    return token;
  }

  /** Opens a connection for a user on an instance and waits until it is connected. */
  async open(
    userId: string,
    instance = this.instances[0]!,
    options: Partial<ManagerOptions & SocketOptions> = {},
  ): Promise<ClientSocket> {
    const socket = connect(instance.url, {
      auth: { token: await this.token(userId, instance) },
      forceNew: true,
      reconnection: false,
      transports: ["websocket"],
      ...options,
    });
    this.#userOf.set(socket, userId);
    this.clients.add(socket);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${userId}'s connection to ${instance.url} did not connect within 10 s`)), 10_000);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("connect_error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    }).catch((error: Error) => {
      this.close(socket);
      throw error;
    });
    return socket;
  }

  close(socket: ClientSocket): void {
    socket.close();
    this.clients.delete(socket);
  }

  /** The truth: users with at least one connection that is open right now. */
  truth(): string[] {
    const users = new Set<string>();
    for (const socket of this.clients) if (socket.connected) users.add(this.#userOf.get(socket)!);
    return [...users].sort();
  }

  async presence(instance = this.instances[0]!): Promise<string[]> {
    const { status, body } = await getJson<{ users: string[] }>(`${instance.url}/api/presence`);
    if (status !== 200) throw new Error(`/api/presence answered ${status}`);
    return body.users.sort();
  }

  /** Waits until every live instance reports exactly the truth; `withinMs` is the wait's deadline, and how long it took is no claim. */
  async convergence(withinMs: number): Promise<void> {
    const started = Date.now();
    for (;;) {
      try {
        for (const instance of this.instances) {
          if (instance.child.exitCode !== null || instance.child.signalCode !== null) continue;
          expect(await this.presence(instance)).toEqual(this.truth());
        }
        await this.assertNoNegativeCounts();
        return;
      } catch (error) {
        if (Date.now() - started > withinMs) throw error;
        await sleep(50);
      }
    }
  }

  async assertNoNegativeCounts(): Promise<void> {
    const raw = this.redis.cli("HGETALL", "{presence}:users").split("\n").filter(Boolean);
    for (let i = 1; i < raw.length; i += 2) expect(Number(raw[i]), `count of ${raw[i - 1]}`).toBeGreaterThanOrEqual(1);
  }

  /** Every key in Redis. */
  keys(): string[] {
    return this.redis.cli("--scan").split("\n").filter(Boolean);
  }
}

/** Records the "user has disconnected" / "user has connected" events one client receives. */
export function watch(socket: ClientSocket): { joins: string[]; leaves: string[] } {
  const joins: string[] = [];
  const leaves: string[] = [];
  socket.on("user has connected", (u: string) => joins.push(u));
  socket.on("user has disconnected", (u: string) => leaves.push(u));
  return { joins, leaves };
}

export const count = (values: string[], value: string) => values.filter((v) => v === value).length;
