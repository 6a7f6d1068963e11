import { createClusterQueryStore } from "@presence/cluster-query";
import type { PresenceStore } from "@presence/core";
import { MemoryStore } from "@presence/memory";
import { RedisStore } from "@presence/redis";
import { createAdapter as createRedisAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createClusterAdapter } from "@socket.io/cluster-adapter";
import createDebug from "debug";
import { Redis } from "ioredis";
import type { Server, ServerOptions } from "socket.io";
import type { DemoConfig } from "./config";

const debug = createDebug("presence:demo");

/** What a mode plugs into the app: where presence is counted, and how workers talk. */
export interface ModeParts {
  createStore: (io: Server) => PresenceStore;
  serverOptions: Partial<ServerOptions>;
  /** Releases what the mode opened (Redis connections). */
  close(): Promise<void>;
}

function redisClient(url: string, name: string): Redis {
  const client = new Redis(url, { connectionName: `presence-demo:${name}:${process.pid}` });
  client.on("error", (error: Error) => debug("redis (%s): %s", name, error.message));
  return client;
}

export function modeParts(config: DemoConfig, { worker }: { worker: boolean }): ModeParts {
  switch (config.mode) {
    case "standalone":
      return { createStore: () => new MemoryStore(), serverOptions: {}, close: async () => {} };
    case "cluster":
      return {
        createStore: (io) => createClusterQueryStore(io),
        serverOptions: worker ? { adapter: createClusterAdapter() } : {},
        close: async () => {},
      };
    case "redis": {
      const store = redisClient(config.redisUrl, "store");
      const pub = redisClient(config.redisUrl, "pub");
      const sub = redisClient(config.redisUrl, "sub");
      return {
        createStore: () =>
          new RedisStore({ redis: store, heartbeatMs: config.heartbeatMs, leaseTimeoutMs: config.leaseTimeoutMs }),
        serverOptions: { adapter: createRedisAdapter(pub, sub) },
        close: async () => {
          for (const client of [store, pub, sub]) client.disconnect();
        },
      };
    }
  }
}
