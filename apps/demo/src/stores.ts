import { createClusterStore } from "@presence/cluster";
import { createClusterQueryStore } from "@presence/cluster-query";
import type { PresenceStore } from "@presence/core";
import { MemoryStore } from "@presence/memory";
import { RedisStore } from "@presence/redis";
import { createAdapter as createRedisStreamsAdapter } from "@socket.io/redis-streams-adapter";
import type { Server, ServerOptions } from "socket.io";
import { createRecoveringAdapter } from "./cluster-recovery";
import type { DemoConfig } from "./config";
import type { LimitBackend } from "./limits";
import { DEMO_KEY_PREFIX, REDIS_PREFIX, connectRedis, parseRedisUrl, type RedisConnection, type RedisTarget } from "./redis";

/** What a mode plugs into the app: where presence is counted, how workers talk, where limits are counted. */
export interface ModeParts {
  createStore: (io: Server) => PresenceStore;
  serverOptions: Partial<ServerOptions>;
  /** Where the limits and the tab slots are counted. */
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

/**
 * How many buckets the users are spread over on a Redis Cluster: as many on
 * each master of 1, 2, 3, 4, 6 or 12, and few enough that a bucket's batches
 * stay large (bench 9: 12 buckets cost 1.5× the Redis CPU per operation of
 * one bucket and 2.7× the client's; 48 cost about twice 12).
 */
export const CLUSTER_BUCKETS = 12;

/** How long a dropped connection keeps its state for recovery: Socket.IO's own default. */
export const RECOVERY_WINDOW_MS = 2 * 60 * 1000;

/**
 * Connection state recovery, in every mode: a client that comes back within
 * the window keeps its id, channels and identity (so the middlewares are
 * skipped) and receives the broadcasts it missed, on whichever worker or
 * instance it lands. The adapter must keep sessions: the in-memory one
 * (standalone), the demo's recovering cluster adapter (cluster modes), or the
 * Redis Streams adapter (redis mode).
 */
const recovery: Partial<ServerOptions> = {
  connectionStateRecovery: { maxDisconnectionDuration: RECOVERY_WINDOW_MS, skipMiddlewares: true },
};

const healthy = () => [];
const neverLost = () => {};

function redisClient(target: RedisTarget, name: string, problems: Map<string, string>, recovered: () => void): RedisConnection {
  const client = connectRedis(target, name);
  // a lost Redis is logged once per outage and shown by /api/health until it is back
  const lost = (error: Error) => {
    if (!problems.has(name)) console.error(`presence demo: redis (${name}) unreachable: ${error.message}`);
    problems.set(name, `redis (${name}): ${error.message}`);
  };
  client.on("error", lost);
  // a Redis Cluster reports a node it cannot reach on its own
  client.on("node error", lost);
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
        // one process: the in-memory adapter keeps the sessions
        serverOptions: recovery,
        limits: { kind: "memory" },
        problems: healthy,
        onRecovered: neverLost,
        close: async () => {},
      };
    case "cluster":
      return {
        createStore: () => createClusterStore(),
        serverOptions: { ...recovery, adapter: createRecoveringAdapter() },
        limits: { kind: "cluster" },
        problems: healthy,
        onRecovered: neverLost,
        close: async () => {},
      };
    case "cluster-query":
      return {
        createStore: (io) => createClusterQueryStore(io),
        serverOptions: { ...recovery, adapter: createRecoveringAdapter() },
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
      // one server or a Redis Cluster: an ioredis `Redis` or `Cluster`, which the store, the adapter and the limiter all take
      const target = parseRedisUrl(config.redisUrl);
      const [store, adapter, limits] = ["store", "adapter", "limits"].map((name) =>
        redisClient(target, name, problems, name === "adapter" ? recovered : neverLost),
      ) as [RedisConnection, RedisConnection, RedisConnection];
      return {
        createStore: () =>
          new RedisStore({
            redis: store,
            prefix: REDIS_PREFIX,
            // on a Redis Cluster the users are spread over every master (see CLUSTER_BUCKETS); one server keeps one
            buckets: target.kind === "cluster" ? CLUSTER_BUCKETS : 1,
            heartbeatMs: config.heartbeatMs,
            leaseTimeoutMs: config.leaseTimeoutMs,
            // a stopping instance's users are kept for the same grace as a closed tab: a rolling deploy is silent
            leaveGraceMs: config.leaveDelayMs,
          }),
        // Redis Streams rather than pub/sub: it keeps the sessions, and broadcasts survive a short Redis outage
        serverOptions: {
          ...recovery,
          adapter: createRedisStreamsAdapter(adapter, {
            streamName: `${DEMO_KEY_PREFIX}socket.io`,
            sessionKeyPrefix: `${DEMO_KEY_PREFIX}session:`,
            channelPrefix: `${DEMO_KEY_PREFIX}socket.io`,
            // every connection adds one entry (its presence:session): a reconnect storm of this many still recovers
            maxLen: 100_000,
          }),
        },
        limits: { kind: "redis", client: limits },
        problems: () => [...problems.values()],
        onRecovered: (listener) => listeners.push(listener),
        close: async () => {
          for (const client of [store, adapter, limits]) client.disconnect();
        },
      };
    }
  }
}
