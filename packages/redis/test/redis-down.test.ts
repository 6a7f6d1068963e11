import { StoreUnavailableError } from "@presence/core";
import { Redis as Redis5 } from "ioredis";
import { Redis as Redis6 } from "ioredis6";
import { createClient as createClient4 } from "redis4";
import { createClient as createClient5 } from "redis5";
import { createClient as createClient6 } from "redis6";
import { afterAll, describe, expect, it } from "vitest";
import { RedisStore, type RedisStoreOptions } from "../src";
import { freePort } from "../src/testing";

// A Redis that is not there: every supported client's calls reject with
// StoreUnavailableError naming the address and the cause, never a client
// library's own wording ("maxRetriesPerRequest").
const stores: RedisStore[] = [];
const clients: Array<{ disconnect?(): unknown; destroy?(): unknown }> = [];
afterAll(async () => {
  await Promise.allSettled(stores.map((store) => store.close()));
  for (const client of clients) {
    // the stores worked on duplicates: these were never connected (node-redis refuses to close a closed client)
    try {
      void Promise.resolve(client.destroy ? client.destroy() : client.disconnect?.()).catch(() => {});
    } catch {
      // never connected
    }
  }
});

const CLIENTS = [
  ["ioredis 5", (port: number) => new Redis5(port, "127.0.0.1", { lazyConnect: true })],
  ["ioredis 6", (port: number) => new Redis6(port, "127.0.0.1", { lazyConnect: true })],
  ["node-redis 4", (port: number) => createClient4({ url: `redis://127.0.0.1:${port}` })],
  ["node-redis 5", (port: number) => createClient5({ url: `redis://127.0.0.1:${port}` })],
  ["node-redis 6", (port: number) => createClient6({ url: `redis://127.0.0.1:${port}` })],
] as const;

describe("a Redis that is down", () => {
  for (const [name, make] of CLIENTS) {
    it(`${name}: calls reject naming the address and the cause`, async () => {
      const port = await freePort(); // nobody listens there
      const client = make(port);
      (client as { on(event: string, listener: () => void): unknown }).on("error", () => {});
      clients.push(client as (typeof clients)[number]);
      const store = new RedisStore({ redis: client as unknown as RedisStoreOptions["redis"], heartbeatMs: 200, leaseTimeoutMs: 1000, commandTimeoutMs: 500 });
      store.onError(() => {});
      stores.push(store);
      for (const call of [() => store.usersCount(), () => store.connect("c1", "alice")]) {
        const error = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(StoreUnavailableError);
        const { message } = error as Error;
        expect(message).toContain(`127.0.0.1:${port}`);
        expect(message).not.toMatch(/maxRetriesPerRequest/);
        expect(message).toMatch(/ECONNREFUSED/);
      }
    });
  }
});
