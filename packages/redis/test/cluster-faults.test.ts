import { randomUUID } from "node:crypto";
import type { Transition } from "@presence/core";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisStore, type RedisStoreOptions } from "../src";
import { startRedisCluster, startRedisProxy, type RedisClusterNodes, type RedisProxy } from "../src/testing";

// A one-node Redis Cluster reached through a TCP proxy: natMap sends the
// cluster's own address of the node to the proxy, so the proxy can lose a
// reply or cut the node off.
let cluster: RedisClusterNodes;
let proxy: RedisProxy;
let client: Cluster;
const stores: RedisStore[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster(1);
  const port = cluster.ports[0]!;
  proxy = await startRedisProxy(port);
  client = new Cluster([{ host: "127.0.0.1", port: proxy.port }], {
    natMap: { [`127.0.0.1:${port}`]: { host: "127.0.0.1", port: proxy.port } },
  });
  client.on("error", () => {});
  await client.ping();
}, 60_000);
afterAll(async () => {
  await Promise.allSettled(stores.map((s) => s.close()));
  client?.disconnect();
  await proxy?.close();
  await cluster?.stop();
});

function store(options: Partial<RedisStoreOptions> = {}) {
  const s = new RedisStore({ redis: client, prefix: `cf-${randomUUID()}`, heartbeatMs: 200, leaseTimeoutMs: 1000, commandTimeoutMs: 500, ...options });
  s.onError(() => {});
  stores.push(s);
  return s;
}

async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Joins of `userId` announced so far (a call's own join is announced too, before it resolves). */
const joinsOf = (transitions: Transition[], userId: string) => transitions.filter((t) => t.type === "connected" && t.userId === userId).length;

async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("on a one-node Redis Cluster through a lossy proxy", () => {
  it("never resends a write whose reply was lost (mechanism 4): the join is reported once", async () => {
    const s = store();
    await s.usersCount(); // registered
    const seen: Transition[] = [];
    s.onTransition((t) => seen.push(t));
    const lost = proxy.dropReplyTo("alice"); // the apply call that carries alice
    const answer = s.connect("c1", "alice").then(
      (joined) => joined,
      () => undefined, // in doubt: the store settles it
    );
    await within(10_000, "the lost reply", lost);
    await within(10_000, "the connect call", answer);
    await waitFor(() => joinsOf(seen, "alice") >= 1, "alice's join to be announced");
    await new Promise((r) => setTimeout(r, 600)); // room for a second announcement, if there were one
    expect(seen.map((t) => `${t.type}:${t.userId}`)).toEqual(["connected:alice"]);
    expect(await s.isUserConnected("alice")).toBe(true);
    expect(await client.hget(s.keys.users, "alice")).toBe("1");
  });

  it("bounds every call by commandTimeoutMs while the node is unreachable (mechanism 5)", async () => {
    const s = store();
    await s.connect("c1", "bob");
    proxy.cut("silent"); // the Cluster reconnects and waits for an answer that never comes
    try {
      await new Promise((r) => setTimeout(r, 300)); // calls made while the Cluster is reconnecting wait in its offline queue
      const calls = [s.usersCount(), s.connect("c2", "carol"), s.isUserConnected("bob"), s.disconnect("c1")];
      const outcomes = await within(4000, "calls while the node is cut off", Promise.allSettled(calls));
      for (const outcome of outcomes) expect(outcome).toMatchObject({ status: "rejected", reason: { code: "STORE_UNAVAILABLE" } });
    } finally {
      proxy.restore();
    }
    // and it converges once the node is back: carol connected, bob's tab closed
    await waitFor(async () => JSON.stringify(await client.hgetall(s.keys.users).catch(() => ({}))) === JSON.stringify({ carol: "1" }), "Redis to hold carol alone", 15_000);
  });
});
