import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Real `redis-server` processes for tests: started on free ports, so that a
 * test can kill, pause and restart them without touching anyone else's.
 */
export interface RedisServer {
  port: number;
  url: string;
  process: ChildProcess;
  /** Sends a signal to the server (SIGSTOP to make it unreachable, SIGCONT to bring it back). */
  signal(signal: NodeJS.Signals): void;
  /** `SHUTDOWN NOSAVE`: the server stops and loses everything. */
  shutdownNoSave(): Promise<void>;
  /**
   * Starts the server again on the same port (a new process: new hash seeds),
   * empty, or with `fromSnapshot` from the RDB file the last `SAVE` wrote.
   */
  restart(options?: { fromSnapshot?: boolean }): Promise<void>;
  /** Runs a command with redis-cli (for admin commands such as SCRIPT FLUSH or CLIENT KILL). */
  cli(...args: string[]): string;
  stop(): Promise<void>;
}

const INSTALL_HINT =
  "redis-server was not found. The Redis tests start their own servers: install Redis (Debian/Ubuntu: `apt-get install redis-server`, macOS: `brew install redis`) and run the tests again.";

export function assertRedisInstalled(): void {
  const probe = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) throw new Error(INSTALL_HINT);
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

async function waitForPing(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${child.exitCode}`);
    const ping = spawnSync("redis-cli", ["-p", String(port), "PING"], { encoding: "utf8" });
    if (ping.stdout?.trim() === "PONG") return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
}

export interface StartRedisOptions {
  port?: number;
  /** Extra `redis-server` arguments, e.g. `["--cluster-enabled", "yes"]`. */
  args?: string[];
}

export async function startRedisServer(options: StartRedisOptions = {}): Promise<RedisServer> {
  assertRedisInstalled();
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), `presence-redis-${port}-`));
  const launch = async () => {
    const child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...(options.args ?? [])],
      { stdio: "ignore" },
    );
    await waitForPing(port, child);
    return child;
  };
  let child = await launch();

  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get process() {
      return child;
    },
    signal(signal) {
      child.kill(signal);
    },
    async shutdownNoSave() {
      const exited = once(child, "exit");
      spawnSync("redis-cli", ["-p", String(port), "SHUTDOWN", "NOSAVE"]);
      await exited;
    },
    async restart({ fromSnapshot = false } = {}) {
      if (child.exitCode === null && child.signalCode === null) await server.shutdownNoSave();
      if (!fromSnapshot) rmSync(join(dir, "dump.rdb"), { force: true });
      child = await launch();
    },
    cli(...args) {
      return spawnSync("redis-cli", ["-p", String(port), ...args], { encoding: "utf8" }).stdout.trim();
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, "exit");
        child.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

export interface RedisClusterNodes {
  ports: number[];
  nodes: RedisServer[];
  /** The nodes that are masters now (a failover changes them), each with the slot ranges it serves. */
  masters(): Array<{ node: RedisServer; id: string; slots: Array<[number, number]> }>;
  /** The node serving `slot` now. */
  masterOf(slot: number): RedisServer;
  /** The replicas of a master, by its node id. */
  replicasOf(masterId: string): RedisServer[];
  /** Resolves once every node says `cluster_state:ok` and agrees on who serves every slot (after a failover or a migration). */
  settled(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface StartRedisClusterOptions {
  /** Replicas per master. @default 0 */
  replicas?: number;
  /** `cluster-node-timeout`: how long a master may be unreachable before its replica takes over. @default 5000 */
  nodeTimeoutMs?: number;
}

interface NodeLine {
  id: string;
  port: number;
  master: boolean;
  failed: boolean;
  masterId: string;
  slots: Array<[number, number]>;
}

function parseNodes(text: string): NodeLine[] {
  return text
    .split("\n")
    .filter((line) => line.trim().length > 0)
    .map((line) => {
      const [id, address, flags, masterId, , , , , ...slots] = line.split(" ");
      return {
        id: id!,
        port: Number(address!.split("@")[0]!.split(":")[1]),
        master: flags!.includes("master"),
        failed: flags!.includes("fail"),
        masterId: masterId!,
        slots: slots.filter((slot) => !slot.startsWith("[")).map((slot) => {
          const [low, high] = slot.split("-").map(Number);
          return [low!, high ?? low!] as [number, number];
        }),
      };
    });
}

/**
 * A Redis Cluster of `masters` masters, each with `replicas` replicas, made
 * with `redis-cli --cluster create` (one master without replicas:
 * `CLUSTER ADDSLOTSRANGE`).
 */
export async function startRedisCluster(masters = 3, options: StartRedisClusterOptions = {}): Promise<RedisClusterNodes> {
  const { replicas = 0, nodeTimeoutMs = 5000 } = options;
  const nodes: RedisServer[] = [];
  for (let i = 0; i < masters * (1 + replicas); i++) {
    const port = await freePort();
    nodes.push(
      await startRedisServer({
        port,
        args: ["--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`, "--cluster-node-timeout", String(nodeTimeoutMs), "--cluster-announce-ip", "127.0.0.1"],
      }),
    );
  }
  if (masters === 1 && replicas === 0) {
    // redis-cli --cluster create wants three masters: one node takes every slot itself
    const added = nodes[0]!.cli("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
    if (added !== "OK") throw new Error(`CLUSTER ADDSLOTSRANGE failed: ${added}`);
  } else {
    const create = spawnSync(
      "redis-cli",
      ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", String(replicas), "--cluster-yes"],
      { encoding: "utf8" },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
  }
  const alive = () => nodes.filter((n) => n.process.exitCode === null && n.process.signalCode === null);
  const view = () => parseNodes(alive()[0]!.cli("CLUSTER", "NODES"));
  const byPort = (port: number) => nodes.find((n) => n.port === port)!;
  const cluster: RedisClusterNodes = {
    ports: nodes.map((n) => n.port),
    nodes,
    masters: () =>
      view()
        .filter((line) => line.master && !line.failed && line.slots.length > 0)
        .map((line) => ({ node: byPort(line.port), id: line.id, slots: line.slots })),
    masterOf(slot) {
      const master = cluster.masters().find(({ slots }) => slots.some(([low, high]) => slot >= low && slot <= high));
      if (!master) throw new Error(`no master serves slot ${slot}`);
      return master.node;
    },
    replicasOf: (masterId) =>
      view()
        .filter((line) => !line.master && line.masterId === masterId)
        .map((line) => byPort(line.port)),
    async settled(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const views = alive().map((n) => n.cli("CLUSTER", "INFO").includes("cluster_state:ok") && JSON.stringify(parseNodes(n.cli("CLUSTER", "NODES")).filter((l) => l.master && !l.failed).map((l) => [l.port, l.slots]).sort()));
        const replicasUp = alive().every((n) => !n.cli("INFO", "replication").includes("role:slave") || n.cli("INFO", "replication").includes("master_link_status:up"));
        if (views.every((v) => v !== false && v === views[0]) && replicasUp) return;
        if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for the Redis Cluster to settle (every node ok, agreeing on the slots, replicas in sync)`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
  await cluster.settled(30_000);
  return cluster;
}

/**
 * A TCP proxy in front of a Redis server: what a network partition or a lost
 * reply looks like to one client. `cut()` drops every connection and refuses
 * new ones until `restore()`; `dropReplyTo(pattern)` lets the next command
 * containing `pattern` through to Redis, then closes that connection instead
 * of delivering Redis's reply: the command ran, its caller never learns how.
 */
export interface RedisProxy {
  port: number;
  url: string;
  /**
   * Drops every connection; until `restore()`, new ones are refused
   * (`"refuse"`, a host that is down) or accepted and never answered
   * (`"silent"`, packets lost on the way).
   */
  cut(mode?: "refuse" | "silent"): void;
  restore(): void;
  /**
   * Arms a lost reply: resolves once a command whose RESP text contains
   * `pattern` (case-insensitive) was forwarded and its reply thrown away.
   */
  dropReplyTo(pattern: string): Promise<void>;
  close(): Promise<void>;
}

export async function startRedisProxy(targetPort: number): Promise<RedisProxy> {
  const { createConnection, createServer: createTcpServer } = await import("node:net");
  const sockets = new Set<import("node:net").Socket>();
  let open = true;
  let silent = false;
  let armed: { pattern: string; dropped: () => void } | undefined;
  const server = createTcpServer((client) => {
    if (!open) {
      if (!silent) return void client.destroy();
      sockets.add(client); // held open, never answered
      client.on("close", () => sockets.delete(client));
      client.on("error", () => {});
      return;
    }
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
    let dropping: (() => void) | undefined;
    client.on("data", (chunk: Buffer) => {
      if (armed && chunk.toString("latin1").toLowerCase().includes(armed.pattern)) {
        dropping = armed.dropped;
        armed = undefined;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (dropping) {
        // the command ran: its reply is lost with the connection
        client.destroy();
        upstream.destroy();
        dropping();
        return;
      }
      client.write(chunk);
    });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    cut(mode = "refuse") {
      open = false;
      silent = mode === "silent";
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      open = true;
    },
    dropReplyTo(pattern) {
      return new Promise<void>((resolve) => {
        armed = { pattern: pattern.toLowerCase(), dropped: resolve };
      });
    },
    async close() {
      open = false;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What {@link startPinger} saw: the worst round trip and how often Redis answered BUSY. */
export interface PingReport {
  /** The worst PING round trip, in ms; a PING answered BUSY counts until the retry that succeeds. */
  worst: number;
  pings: number;
  busy: number;
}

// Pings until its stdin closes, then prints a PingReport as JSON.
const PINGER = `
import { Redis } from "ioredis";
const redis = new Redis(process.argv[1], { maxRetriesPerRequest: null });
redis.on("error", () => {});
await redis.ping();
let worst = 0, pings = 0, busy = 0, running = true;
process.stdin.on("end", () => (running = false)).resume();
console.log("pinging");
while (running) {
  const started = process.hrtime.bigint();
  for (;;) {
    try {
      await redis.ping();
      break;
    } catch {
      busy++; // BUSY: a script holds the server; keep the clock running
    }
  }
  worst = Math.max(worst, Number(process.hrtime.bigint() - started) / 1e6);
  pings++;
}
console.log(JSON.stringify({ worst, pings, busy }));
redis.disconnect();
`;

/**
 * A second client, in a process of its own (so that the caller's event loop
 * does not skew it), pinging Redis in a loop until `stop()`.
 */
export async function startPinger(url: string): Promise<{ stop(): Promise<PingReport> }> {
  const { createInterface } = await import("node:readline");
  const { fileURLToPath } = await import("node:url");
  const here = typeof __dirname === "string" ? __dirname : fileURLToPath(new URL(".", import.meta.url));
  const child = spawn(process.execPath, ["--input-type=module", "-e", PINGER, url], { stdio: ["pipe", "pipe", "inherit"], cwd: here });
  const lines = createInterface({ input: child.stdout! });
  const line = (what: string) =>
    once(lines, "line", { signal: AbortSignal.timeout(15_000) }).catch(() => {
      child.kill("SIGKILL");
      throw new Error(`waited 15000 ms for the pinger ${what}`);
    }) as Promise<[string]>;
  await line("to start");
  return {
    async stop() {
      const report = line("to report");
      child.stdin!.end();
      return JSON.parse((await report)[0]) as PingReport;
    },
  };
}
