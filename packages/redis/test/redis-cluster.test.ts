import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describePresenceStore } from "@presence/core/testing";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeBindingScenarios } from "@presence/socketio/testing";
import { RedisStore, type RedisStoreOptions } from "../src";
import { startRedisCluster, type RedisClusterNodes } from "../src/testing";
import { within } from "./harness";

let cluster: RedisClusterNodes;
let client: Cluster;
const stores: RedisStore[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  client = new Cluster(cluster.ports.map((port) => ({ host: "127.0.0.1", port })));
  client.on("error", () => {});
  await client.ping();
}, 60_000);
afterAll(async () => {
  await Promise.allSettled(stores.map((s) => s.close()));
  client?.disconnect();
  await cluster?.stop();
});

function deployment(options: Partial<RedisStoreOptions> = {}) {
  const prefix = `cluster-${randomUUID()}`;
  return {
    prefix,
    store: () => {
      const store = new RedisStore({ redis: client, prefix, ...options });
      stores.push(store);
      return store;
    },
  };
}

describe("on a 3-master Redis Cluster", () => {
  it("spreads deployments over the masters, each one in a single slot", async () => {
    const slots = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const store = deployment().store();
      await store.connect("c1", "alice");
      slots.add(Number(await client.cluster("KEYSLOT", store.keys.users)));
      for (const key of [store.keys.processes, store.keys.cleanups, store.keys.connections(store.processId!)]) {
        expect(Number(await client.cluster("KEYSLOT", key))).toBe(Number(await client.cluster("KEYSLOT", store.keys.users)));
      }
    }
    expect(slots.size).toBeGreaterThan(1);
  });

  it("cleans up a process killed with SIGKILL, announcing each leave once", async () => {
    const d = deployment({ heartbeatMs: 200, leaseTimeoutMs: 800 });
    const [a, b] = [d.store(), d.store()];
    await a.connect("a1", "shared");
    const url = `redis-cluster://${cluster.ports.map((p) => `127.0.0.1:${p}`).join(",")}`;
    const holder = spawn(
      process.execPath,
      [fileURLToPath(new URL("./fixtures/holder.mjs", import.meta.url)), url, d.prefix, "200", "800", "@300/60", "x=shared"],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    await within("the holder on the Redis Cluster to report its connections counted", once(createInterface({ input: holder.stdout! }), "line"), 20_000);
    expect(await a.usersCount()).toBe(61);
    const leaves: string[] = [];
    for (const store of [a, b]) store.onTransition((t) => t.type === "disconnected" && leaves.push(t.userId));
    holder.kill("SIGKILL");
    await expect.poll(() => b.usersCount(), { timeout: 10_000 }).toBe(1);
    await new Promise((r) => setTimeout(r, 600));
    expect(leaves.sort()).toEqual(Array.from({ length: 60 }, (_, i) => `user-${i}`).sort());
    expect(await a.usersList()).toEqual(["shared"]);
  });
});

describePresenceStore("redis on a Redis Cluster", { create: () => deployment().store(), numRuns: 15 });

describeBindingScenarios("redis store on a Redis Cluster", {
  createStores: async (count) => {
    const d = deployment();
    return Array.from({ length: count }, () => d.store());
  },
});
