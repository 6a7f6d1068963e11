import { spawnSync } from "node:child_process";
import { freePort, startRedisServer, type RedisServer } from "@presence/redis/testing";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_SECRET, connectClient, eventually, getJson, login, startDemo, type DemoProcess } from "./demo-process";

/**
 * A real Redis Cluster of three masters on free ports: `redis-server
 * --cluster-enabled yes`, joined by `redis-cli --cluster create`. Every wait
 * has a deadline: each server's first PING (startRedisServer), the create
 * command, and the cluster reaching `cluster_state:ok` on every node.
 */
async function startRedisCluster(): Promise<{ nodes: RedisServer[]; stop(): Promise<void> }> {
  const nodes: RedisServer[] = [];
  const stop = async () => void (await Promise.all(nodes.map((node) => node.stop())));
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      nodes.push(
        await startRedisServer({
          port,
          args: ["--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`, "--cluster-node-timeout", "5000", "--cluster-announce-ip", "127.0.0.1"],
        }),
      );
    }
    const create = spawnSync("redis-cli", ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "0", "--cluster-yes"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    if (create.error || create.status !== 0) {
      throw new Error(`redis-cli --cluster create did not make the cluster within 30 s: ${create.error?.message ?? ""}${create.stdout}${create.stderr}`);
    }
    await eventually(
      () => {
        for (const node of nodes) expect(node.cli("CLUSTER", "INFO"), `node ${node.port}`).toContain("cluster_state:ok");
      },
      20_000,
      "every node of the Redis Cluster at cluster_state:ok",
    );
    return { nodes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

describe("the demo on a Redis Cluster (redis+cluster:// seeds; two instances of 2 workers)", () => {
  let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
  let a: DemoProcess;
  let b: DemoProcess;
  const clients: ClientSocket[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
    const [one, two, three] = cluster.nodes.map((node) => `127.0.0.1:${node.port}`);
    const flags = (seeds: string) => [
      "--mode", "redis", "--workers", "2", "--redis-url", `redis+cluster://${seeds}`, "--secret", TEST_SECRET,
      "--heartbeat-ms", "250", "--lease-timeout-ms", "1000", "--leave-delay-ms", "0", "--log-level", "warn",
    ];
    // each instance knows only some of the nodes: the rest it learns from the cluster
    [a, b] = await Promise.all([startDemo(flags(`${one},${two}`)), startDemo(flags(three!))]);
  }, 120_000);
  afterAll(async () => {
    for (const client of clients) client.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await cluster?.stop();
  });

  it("logs in, lists two users connected to two instances, and drops the one who leaves", async () => {
    const observer = await connectClient(a.url, await login(a.url, "observer"), { transports: ["websocket"] });
    clients.push(observer);
    const seen: string[] = [];
    observer.on("user has connected", (userId: string) => userId !== "observer" && seen.push(`+${userId}`));
    observer.on("user has disconnected", (userId: string) => seen.push(`-${userId}`));

    const alice = await connectClient(a.url, await login(a.url, "alice"), { transports: ["polling"] });
    const bob = await connectClient(b.url, await login(b.url, "bob"), { transports: ["websocket"] });
    clients.push(alice, bob);
    for (const demo of [a, b]) {
      await eventually(
        async () => expect((await getJson<{ users: string[] }>(`${demo.url}/api/presence`)).body.users.sort()).toEqual(["alice", "bob", "observer"]),
        10_000,
        `${demo.url} listing alice, bob and the observer`,
      );
    }
    await eventually(() => expect([...seen].sort()).toEqual(["+alice", "+bob"]), 10_000, "the observer hearing both joins");

    bob.close();
    for (const demo of [a, b]) {
      await eventually(
        async () => expect((await getJson<{ users: string[] }>(`${demo.url}/api/presence`)).body.users.sort()).toEqual(["alice", "observer"]),
        10_000,
        `${demo.url} no longer listing bob`,
      );
    }
    expect((await getJson(`${b.url}/api/presence/bob`)).body).toEqual({ userId: "bob", online: false });
    await eventually(() => expect(seen).toContain("-bob"), 10_000, "the observer hearing bob leave");
    expect(seen.filter((event) => event === "-bob")).toHaveLength(1);
  });

  it("spreads presence over every master in its buckets, and keeps the demo's own keys under {presence} in one slot", async () => {
    const keys = cluster.nodes.flatMap((node) => node.cli("--scan").split("\n").filter(Boolean).map((key) => ({ key, node: node.port })));
    expect(keys.length).toBeGreaterThan(0);
    for (const { key } of keys) expect(/^\{presence(:\d+-\d+)?\}:/.test(key), key).toBe(true);
    const buckets = keys.filter(({ key }) => key.startsWith("{presence:"));
    expect(new Set(buckets.map(({ key }) => key.slice(0, key.indexOf("}") + 1))).size).toBe(12); // every process registers in every bucket
    expect(new Set(buckets.map(({ node }) => node)).size).toBe(3); // on every master
    const own = keys.filter(({ key }) => key.startsWith("{presence}:"));
    expect(new Set(own.map(({ node }) => node)).size).toBe(1); // one hash tag: one slot, one master
    expect(own.some(({ key }) => key.startsWith("{presence}:demo:tabs:"))).toBe(true);
    expect(own.some(({ key }) => key.startsWith("{presence}:demo:attempts:"))).toBe(true);
    expect(own.some(({ key }) => key === "{presence}:layout")).toBe(true);
    for (const { key } of keys) for (const userId of ["alice", "observer"]) expect(key.includes(userId), key).toBe(false);
  });
});
