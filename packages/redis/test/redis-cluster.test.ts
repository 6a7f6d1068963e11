import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Transition } from "@presence/core";
import { describePresenceStore } from "@presence/core/testing";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeBindingScenarios } from "@presence/socketio/testing";
import { RedisStore, type RedisStoreOptions } from "../src";
import { startRedisCluster, type RedisClusterNodes } from "../src/testing";
import { checkVersions, random, sleep, waitFor, within } from "./harness";

let cluster: RedisClusterNodes;
let client: Cluster;
const stores: RedisStore[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster(3, { replicas: 1, nodeTimeoutMs: 2000 });
  client = new Cluster(cluster.ports.map((port) => ({ host: "127.0.0.1", port })));
  client.on("error", () => {});
  await client.ping();
}, 60_000);
afterAll(async () => {
  await Promise.allSettled(stores.map((s) => s.close()));
  client?.disconnect();
  await cluster?.stop();
});

/** Users spread over 6 buckets: two on each master. */
const BUCKETS = 6;

function deployment(options: Partial<RedisStoreOptions> = {}) {
  const prefix = `cluster-${randomUUID()}`;
  return {
    prefix,
    store: () => {
      const store = new RedisStore({ redis: client, prefix, buckets: BUCKETS, ...options });
      stores.push(store);
      return store;
    },
  };
}

describe("on a Redis Cluster of 3 masters and 3 replicas", () => {
  it("spreads one deployment's buckets evenly over the masters, every key of a bucket in its one slot, every user in one bucket", async () => {
    const store = deployment().store();
    const users = Array.from({ length: 60 }, (_, i) => `u${i}`);
    await Promise.all(users.map((userId, i) => store.connect(`c${i}`, userId)));
    const perMaster = new Map<number, number>();
    for (const keys of store.bucketKeys) {
      const slot = Number(await client.cluster("KEYSLOT", keys.users));
      for (const key of [keys.processes, keys.version, keys.record("p"), keys.room("lobby")]) expect(Number(await client.cluster("KEYSLOT", key))).toBe(slot);
      const port = cluster.masterOf(slot).port;
      perMaster.set(port, (perMaster.get(port) ?? 0) + 1);
    }
    expect([...perMaster.values()]).toEqual([2, 2, 2]);
    let counted = 0;
    for (const keys of store.bucketKeys) counted += await client.hlen(keys.users);
    expect(counted).toBe(60);
    expect(await store.usersCount()).toBe(60);
  });

  it("spreads deployments of one bucket over the masters, each one in a single slot", async () => {
    const slots = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const store = deployment({ buckets: 1 }).store();
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
      { stdio: ["pipe", "pipe", "inherit"], env: { ...process.env, PRESENCE_BUCKETS: String(BUCKETS) } },
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

const LOAD_USERS = Array.from({ length: 30 }, (_, i) => `user-${i}`);

async function underLoad(change: (stores: RedisStore[]) => Promise<void>) {
  const d = deployment({ heartbeatMs: 200, leaseTimeoutMs: 3000, commandTimeoutMs: 1000 });
  const stores = [d.store(), d.store()];
  const transitions: Transition[] = [];
  for (const store of stores) {
    store.onTransition((t) => transitions.push(t));
    store.onError(() => {}); // Redis away for a while: reported, and expected here
  }
  const open = new Map<string, { store: RedisStore; userId: string }>();
  let ids = 0;
  let running = true;
  let failures = 0;
  const next = random(42);
  const load = (async () => {
    while (running) {
      const store = stores[Math.floor(next() * 2)]!;
      const mine = [...open].filter(([, tab]) => tab.store === store);
      const call = next() < 0.55 || mine.length === 0
        ? (() => {
            const connectionId = `tab-${ids++}`;
            const userId = LOAD_USERS[Math.floor(next() * LOAD_USERS.length)]!;
            open.set(connectionId, { store, userId });
            return store.connect(connectionId, userId);
          })()
        : (() => {
            const [connectionId] = mine[Math.floor(next() * mine.length)]!;
            open.delete(connectionId);
            return store.disconnect(connectionId);
          })();
      await call.catch(() => failures++);
      await sleep(5);
    }
  })();
  await sleep(500);
  await change(stores);
  await sleep(500);
  running = false;
  await load;
  await cluster.settled();
  await within("both stores to settle", Promise.all(stores.map((s) => s.settled())), 60_000);
  const counts: Record<string, string> = {};
  for (const { userId } of open.values()) counts[userId] = String(Number(counts[userId] ?? 0) + 1);
  const inRedis = async () => {
    const all: Record<string, string> = {};
    for (const keys of stores[0]!.bucketKeys) Object.assign(all, await client.hgetall(keys.users));
    return all;
  };
  await expect.poll(async () => Object.entries(await inRedis()).sort(), { timeout: 30_000, interval: 200 }).toEqual(Object.entries(counts).sort());
  await sleep(1000); // late announcements, if any, arrive
  checkVersions(transitions, new Set(Object.keys(counts)), new Set());
  expect((await stores[0]!.usersList()).sort()).toEqual(Object.keys(counts).sort());
  expect(await stores[1]!.usersCount()).toBe(Object.keys(counts).length);
  expect(ids, "tabs opened under load").toBeGreaterThan(50);
  console.log(`under load: ${ids} tabs opened, ${failures} calls failed while the cluster changed, ${transitions.length} transitions announced`);
}


/**
 * Failover and resharding under load. Two stores of one deployment (two
 * processes, as far as Redis can tell) open and close tabs of 30 users while
 * the cluster changes under them. The truth is the tabs the test opened and
 * did not close (a call that fails is still the store's to carry through, as
 * in the history test). At quiescence Redis holds exactly the truth, and the
 * announcements of both stores, per user in version order, alternate and end
 * as the truth says: no ghost, no missing user, each transition announced once.
 */
describe("through failover and resharding, under load", { timeout: 120_000 }, () => {
  it("a manual CLUSTER FAILOVER: a replica takes over a master in use, losing nothing", async () => {
    await underLoad(([store]) => failover(store!, 0));
  });

  it("a slot migration of a bucket in use (redis-cli --cluster reshard): no batch applied twice, none lost", async () => {
    await underLoad(([store]) => reshard(store!, 0));
  });

  it("a master SIGKILLed and its replica promoted: presence converges, each transition announced once", async () => {
    await underLoad(([store]) => killMaster(store!, 1));
  });
});

/**
 * The history test's cluster variant: under the same load, a seeded run of
 * random failovers, migrations and killed masters of random buckets, one
 * after the other with little time between (a second failure while the
 * stores still recover from the first). CLUSTER_HISTORY_SEEDS=20 runs more.
 */
describe("cluster history: random failovers and migrations under load", { timeout: 300_000 }, () => {
  const SEEDS = Number(process.env.CLUSTER_HISTORY_SEEDS ?? 1);
  for (let seed = 1; seed <= SEEDS; seed++) {
    it(`seed ${seed}`, async () => {
      const next = random(seed * 7919);
      const faults = [failover, reshard, killMaster];
      await underLoad(async ([store]) => {
        for (let step = 0; step < 4; step++) {
          const fault = faults[Math.floor(next() * faults.length)]!;
          const bucket = Math.floor(next() * BUCKETS);
          console.log(`cluster history seed ${seed}, step ${step}: ${fault.name} of bucket ${bucket}`);
          await fault(store!, bucket);
          await sleep(Math.floor(next() * 300));
        }
      });
    });
  }
});

/** A bucket's slot and the master serving it now. */
async function homeOf(store: RedisStore, bucket: number) {
  const slot = Number(await client.cluster("KEYSLOT", store.bucketKeys[bucket]!.users));
  const node = cluster.masterOf(slot);
  return { slot, master: cluster.masters().find((m) => m.node === node)! };
}

/** `CLUSTER FAILOVER` on a replica of the bucket's master: the replica takes over once it has every write. */
async function failover(store: RedisStore, bucket: number): Promise<void> {
  const { slot, master } = await homeOf(store, bucket);
  const replica = cluster.replicasOf(master.id)[0]!;
  expect(replica.cli("CLUSTER", "FAILOVER")).toBe("OK");
  await waitFor("the replica to take over", () => cluster.masterOf(slot) === replica, 20_000);
  await cluster.settled();
}

/** `redis-cli --cluster reshard`: the bucket's master gives its lowest slots, the bucket's among them, to another master. */
async function reshard(store: RedisStore, bucket: number): Promise<void> {
  const { slot, master: from } = await homeOf(store, bucket);
  const to = cluster.masters().find(({ id }) => id !== from.id)!;
  const moved = from.slots.reduce((n, [low, high]) => n + Math.max(0, Math.min(high, slot) - low + 1), 0);
  const run = spawnSync(
    "redis-cli",
    ["--cluster", "reshard", `127.0.0.1:${from.node.port}`, "--cluster-from", from.id, "--cluster-to", to.id, "--cluster-slots", String(moved), "--cluster-yes", "--cluster-pipeline", "100"],
    { encoding: "utf8", timeout: 90_000 },
  );
  expect(run.status, run.stdout + run.stderr).toBe(0);
  await cluster.settled();
  expect(cluster.masterOf(slot)).toBe(to.node);
}

/** SIGKILL of the bucket's master: its replica is promoted (what it had not replicated is lost), then the old master comes back as a replica. */
async function killMaster(store: RedisStore, bucket: number): Promise<void> {
  const { slot, master } = await homeOf(store, bucket);
  const replica = cluster.replicasOf(master.id)[0]!;
  master.node.signal("SIGKILL");
  await waitFor("the replica to be promoted", () => {
    try {
      return cluster.masterOf(slot) === replica;
    } catch {
      return false; // no master for the slot while the replica waits out the node timeout
    }
  }, 30_000);
  await master.node.restart({ fromSnapshot: true });
  await cluster.settled();
}
