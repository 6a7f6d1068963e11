import { randomUUID } from "node:crypto";
import { describePresenceStore } from "@presence/core/testing";
import { describeBindingScenarios } from "@presence/socketio/testing";
import type { Transition } from "@presence/core";
import type { Redis as Redis5 } from "ioredis";
import { Cluster as Cluster6, Redis as Redis6 } from "ioredis6";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisStore } from "../src";
import { startRedisCluster, startRedisProxy, startRedisServer, type RedisClusterNodes, type RedisProxy, type RedisServer } from "../src/testing";
import { FAST, STEADY, show, sleep, waitFor } from "./harness";

// The same store on ioredis 6 (the current release): the conformance suite,
// a lost reply on standalone Redis and one on a one-node Redis Cluster.
// ioredis 6's types are not ioredis 5's: the store only needs the shape it
// checks at run time, so the clients are passed through `unknown`.
const as5 = (client: unknown) => client as Redis5;

let server: RedisServer;
let cluster: RedisClusterNodes;
let clusterProxy: RedisProxy;
const clients: Array<{ disconnect(): void }> = [];
const stores: RedisStore[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  cluster = await startRedisCluster(1);
  clusterProxy = await startRedisProxy(cluster.ports[0]!);
}, 60_000);
afterAll(async () => {
  await Promise.allSettled(stores.map((s) => s.close()));
  for (const client of clients) client.disconnect();
  await clusterProxy?.close();
  await cluster?.stop();
  await server?.stop();
});

function client6(url: string, protocol: 2 | 3 = 2) {
  const client = new Redis6(url, { maxRetriesPerRequest: 0, protocol });
  client.on("error", () => {});
  clients.push(client);
  return client;
}

function store(client: unknown, prefix = `v6-${randomUUID()}`, timing = STEADY) {
  const s = new RedisStore({ redis: as5(client), prefix, ...timing });
  s.onError(() => {});
  stores.push(s);
  return s;
}

describePresenceStore("redis on ioredis 6", { create: () => store(client6(server.url)), numRuns: 10 });
describePresenceStore("redis on ioredis 6 speaking RESP3", { create: () => store(client6(server.url, 3)), numRuns: 10 });

describeBindingScenarios("redis store on ioredis 6", {
  createStores: async (count: number) => {
    const prefix = `v6-${randomUUID()}`;
    return Array.from({ length: count }, () => store(client6(server.url), prefix));
  },
});

describe("ioredis 6", () => {
  it("settles a lost reply from Redis's record: one join for a user online elsewhere, none doubled", async () => {
    const proxy = await startRedisProxy(server.port);
    try {
      const prefix = `v6-${randomUUID()}`;
      const [a, b] = [store(client6(proxy.url), prefix, FAST), store(client6(server.url), prefix, FAST)];
      const log: string[] = [];
      for (const s of [a, b]) s.onTransition((t: Transition) => log.push(show(t)));
      await b.connect("b1", "bob");
      const lost = proxy.dropReplyTo("tab-v6");
      const answer = a.connect("tab-v6", "bob").catch(() => false);
      await lost;
      await answer;
      await waitFor("the lost reply to be settled", async () => (await b.isUserConnected("bob")) && (await a.settled().then(() => true)), 5000);
      await sleep(600);
      expect(log).toEqual(["+bob"]);
    } finally {
      await proxy.close();
    }
  });

  it("never resends on a one-node Redis Cluster: a join whose reply was lost is reported once", async () => {
    const port = cluster.ports[0]!;
    const client = new Cluster6([{ host: "127.0.0.1", port: clusterProxy.port }], {
      natMap: { [`127.0.0.1:${port}`]: { host: "127.0.0.1", port: clusterProxy.port } },
    });
    client.on("error", () => {});
    clients.push(client);
    const s = store(client, undefined, FAST);
    await s.usersCount();
    const log: string[] = [];
    s.onTransition((t: Transition) => log.push(show(t)));
    const lost = clusterProxy.dropReplyTo("alice");
    const answer = s.connect("c1", "alice").catch(() => false);
    await lost;
    await answer;
    await waitFor("alice's join to be reported", () => log.length > 0, 10_000);
    await sleep(600);
    expect(log).toEqual(["+alice"]);
  });
});
