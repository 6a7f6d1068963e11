import { randomUUID } from "node:crypto";
import type { Transition } from "@presence/core";
import { describePresenceStore } from "@presence/core/testing";
import { describeBindingScenarios } from "@presence/socketio/testing";
import { createClient as createClient4 } from "redis4";
import { createClient as createClient5 } from "redis5";
import { createClient as createClient6 } from "redis6";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisStore, type RedisStoreOptions } from "../src";
import { startRedisProxy, startRedisServer, type RedisServer } from "../src/testing";
import { FAST, STEADY, show, sleep, waitFor } from "./harness";

// The same store on node-redis (`redis` 4, 5 and 6, the client the
// Socket.IO recipe shows first; 6 speaks RESP3 by default, and is run on
// RESP2 too): the conformance suite, the binding scenarios, and a lost reply
// settled from Redis's record. The clients are passed through
// `unknown`: the store checks their shape at run time.
let server: RedisServer;
const clients: Array<{ destroy?(): unknown; disconnect?(): Promise<unknown> }> = [];
const stores: RedisStore[] = [];

beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  await Promise.allSettled(stores.map((s) => s.close()));
  // the clients given to the stores were never connected themselves: the stores work on duplicates
  void clients;
  await server?.stop();
});

const versions = [
  ["node-redis 4", (url: string) => createClient4({ url })],
  ["node-redis 5", (url: string) => createClient5({ url })],
  ["node-redis 6 (RESP3, its default)", (url: string) => createClient6({ url })],
  ["node-redis 6 on RESP2", (url: string) => createClient6({ url, RESP: 2 })],
] as const;

for (const [name, create] of versions) {
  const client = (url: string) => {
    const c = create(url);
    c.on("error", () => {});
    clients.push(c as unknown as (typeof clients)[number]);
    return c;
  };
  const store = (url: string, prefix = `nr-${randomUUID()}`, timing = STEADY) => {
    const s = new RedisStore({ redis: client(url) as unknown as RedisStoreOptions["redis"], prefix, ...timing });
    s.onError(() => {});
    stores.push(s);
    return s;
  };

  describePresenceStore(`redis on ${name}`, { create: () => store(server.url), numRuns: 10 });

  describeBindingScenarios(`redis store on ${name}`, {
    createStores: async (count: number) => {
      const prefix = `nr-${randomUUID()}`;
      return Array.from({ length: count }, () => store(server.url, prefix));
    },
  });

  describe(name, () => {
    it("settles a lost reply from Redis's record: one join for a user online elsewhere, none doubled", async () => {
      const proxy = await startRedisProxy(server.port);
      try {
        const prefix = `nr-${randomUUID()}`;
        const [a, b] = [store(proxy.url, prefix, FAST), store(server.url, prefix, FAST)];
        const log: string[] = [];
        for (const s of [a, b]) s.onTransition((t: Transition) => log.push(show(t)));
        await b.connect("b1", "bob");
        const lost = proxy.dropReplyTo("tab-nr");
        const answer = a.connect("tab-nr", "bob").catch(() => false);
        await lost;
        await answer;
        await waitFor("the lost reply to be settled", async () => (await redisCount(b, "bob")) === 2, 8000);
        await sleep(600);
        expect(log).toEqual(["+bob"]);
      } finally {
        await proxy.close();
      }
    });
  });
}

async function redisCount(store: RedisStore, userId: string): Promise<number> {
  for await (const page of store.users()) for (const user of page) if (user.userId === userId) return user.connections;
  return 0;
}
