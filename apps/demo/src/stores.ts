import { createClusterStore } from "@presence/cluster";
import { createClusterQueryStore } from "@presence/cluster-query";
import type { PresenceStore } from "@presence/core";
import { MemoryStore } from "@presence/memory";
import { RedisStore } from "@presence/redis";
import { createAdapter as createClusterAdapter } from "@socket.io/cluster-adapter";
import { createAdapter as createRedisAdapter } from "@socket.io/redis-adapter";
import createDebug from "debug";
import { Redis } from "ioredis";
import type { Server, ServerOptions } from "socket.io";
import type { DemoConfig } from "./config";
import type { LimitBackend } from "./limits";

const debug = createDebug("presence:demo");

/** What a mode plugs into the app: where presence is counted, how workers talk, where limits are counted. */
export interface ModeParts {
  createStore: (io: Server) => PresenceStore;
  serverOptions: Partial<ServerOptions>;
  limits: LimitBackend;
  /** What makes this process degraded right now (Redis lost), for `/api/health`. */
  problems: () => string[];
  /**
   * Calls `listener` when the link between the nodes came back after an
   * outage (the Redis adapter reconnected): messages sent meanwhile were
   * lost, so the clients' views must be read again.
   */
  onRecovered: (listener: () => void) => void;
  /** Releases what the mode opened (Redis connections). */
  close(): Promise<void>;
}

/** How long a recovered connection keeps its state (standalone): Socket.IO's own default. */
const RECOVERY_WINDOW_MS = 2 * 60 * 1000;

const healthy = () => [];
const neverLost = () => {};

function redisClient(url: string, name: string, problems: Map<string, string>, recovered: () => void): Redis {
  const client = new Redis(url, { connectionName: `presence-demo:${name}:${process.pid}` });
  // a lost Redis is logged once per outage and shown by /api/health until it is back
  client.on("error", (error: Error) => {
    if (!problems.has(name)) console.error(`presence demo: redis (${name}) unreachable: ${error.message}`);
    problems.set(name, `redis (${name}): ${error.message}`);
  });
  client.on("ready", () => {
    if (!problems.delete(name)) return;
    console.error(`presence demo: redis (${name}) is back`);
    recovered();
  });
  return client;
}

export function modeParts(config: DemoConfig): ModeParts {
  switch (config.mode) {
    case "standalone":
      return {
        createStore: () => new MemoryStore(),
        // one process, the in-memory adapter: a dropped client comes back with its id, rooms and data
        serverOptions: { connectionStateRecovery: { maxDisconnectionDuration: RECOVERY_WINDOW_MS, skipMiddlewares: true } },
        limits: { kind: "memory" },
        problems: healthy,
        onRecovered: neverLost,
        close: async () => {},
      };
    case "cluster":
      return {
        createStore: () => createClusterStore(),
        serverOptions: { adapter: createClusterAdapter() },
        limits: { kind: "cluster" },
        problems: healthy,
        onRecovered: neverLost,
        close: async () => {},
      };
    case "cluster-query":
      return {
        createStore: (io) => createClusterQueryStore(io),
        serverOptions: { adapter: createClusterAdapter() },
        limits: { kind: "cluster" },
        problems: healthy,
        onRecovered: neverLost,
        close: async () => {},
      };
    case "redis": {
      const problems = new Map<string, string>();
      const listeners: Array<() => void> = [];
      const recovered = () => {
        for (const listener of listeners) listener();
      };
      const [store, pub, sub, limits] = ["store", "pub", "sub", "limits"].map((name) =>
        redisClient(config.redisUrl, name, problems, name === "pub" || name === "sub" ? recovered : neverLost),
      ) as [
        Redis,
        Redis,
        Redis,
        Redis,
      ];
      return {
        createStore: () => new RedisStore({ redis: store, heartbeatMs: config.heartbeatMs, leaseTimeoutMs: config.leaseTimeoutMs }),
        serverOptions: { adapter: createRedisAdapter(pub, sub) },
        limits: { kind: "redis", client: limits },
        problems: () => [...problems.values()],
        onRecovered: (listener) => listeners.push(listener),
        close: async () => {
          for (const client of [store, pub, sub, limits]) client.disconnect();
        },
      };
    }
  }
}

/** Fails fast: resolves when Redis answers PING, rejects with a message saying what was tried. */
export async function checkRedis(url: string, timeoutMs = 5000): Promise<void> {
  if (!/^rediss?:\/\//.test(url)) throw new Error(`--redis-url must be a redis:// or rediss:// URL, got ${JSON.stringify(url)}`);
  const client = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let cause: Error | undefined;
  client.on("error", (error: Error) => {
    cause = error;
    debug("redis check: %s", error.message);
  });
  try {
    await Promise.race([
      client.connect().then(() => client.ping()),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
  } catch (error) {
    throw new Error(`cannot reach Redis at ${url}: ${(cause ?? (error as Error)).message}`);
  } finally {
    client.disconnect();
  }
}
