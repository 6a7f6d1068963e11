import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { RedisStore, type RedisStoreOptions } from "../src";
import { startRedisServer, type RedisServer } from "../src/testing";

/**
 * One real redis-server for a test file, started on a free port, and a way
 * to make stores on it: each call to `deployment()` is a fresh prefix.
 */
export function useRedis() {
  const context = {} as {
    server: RedisServer;
    admin: Redis;
    deployment(options?: Partial<RedisStoreOptions>): {
      prefix: string;
      store(overrides?: Partial<RedisStoreOptions>): RedisStore;
    };
  };
  const stores: RedisStore[] = [];

  beforeAll(async () => {
    context.server = await startRedisServer();
    context.admin = new Redis(context.server.url);
    context.admin.on("error", () => {}); // the fault tests take the server away on purpose
  });
  afterAll(async () => {
    await Promise.allSettled(stores.map((s) => s.close()));
    context.admin?.disconnect();
    await context.server?.stop();
  });

  context.deployment = (options = {}) => {
    const prefix = `test-${randomUUID()}`;
    return {
      prefix,
      store(overrides = {}) {
        const store = new RedisStore({ redis: context.admin, prefix, ...options, ...overrides });
        stores.push(store);
        return store;
      },
    };
  };
  return context;
}
