import { randomUUID } from "node:crypto";
import { describePresenceDeployment, type PresenceDeployment } from "@presence/core/testing";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { RedisStore } from "../src";
import { startRedisCluster, startRedisProxy, startRedisServer, type RedisClusterNodes, type RedisProxy, type RedisServer } from "../src/testing";

/** Fast leases, so that a killed node is found dead within a second or two. */
const LEASE = { heartbeatMs: 200, leaseTimeoutMs: 800 };
/** The bound for a killed node: its lease, one heartbeat of the survivors, and slack for a loaded machine. */
const DEAD_NODE_TIMEOUT_MS = 10_000;

/**
 * Each node of a deployment reaches Redis through its own TCP proxies, so
 * that `kill(i)` can cut node i off as SIGKILL would: its connections drop,
 * it renews no lease and announces nothing, and the survivors must find it
 * dead by its lease and clean up after it.
 */
function deploymentOn(connect: (proxies: RedisProxy[]) => Redis | Cluster, targetPorts: () => number[]) {
  return async (nodes: number): Promise<PresenceDeployment> => {
    const prefix = `deployment-${randomUUID()}`;
    const perNode = await Promise.all(
      Array.from({ length: nodes }, async () => {
        const proxies = await Promise.all(targetPorts().map((port) => startRedisProxy(port)));
        const client = connect(proxies);
        client.on("error", () => {}); // a killed node's client fails on purpose
        return { proxies, client, store: new RedisStore({ redis: client, prefix, ...LEASE }) };
      }),
    );
    return {
      stores: perNode.map((node) => node.store),
      async kill(node) {
        for (const proxy of perNode[node]!.proxies) proxy.cut("refuse");
      },
      async close() {
        await Promise.allSettled(perNode.map(({ store }) => store.close()));
        for (const { client } of perNode) client.disconnect();
        await Promise.allSettled(perNode.flatMap(({ proxies }) => proxies.map((proxy) => proxy.close())));
      },
    };
  };
}

let server: RedisServer;
let cluster: RedisClusterNodes;
beforeAll(async () => {
  server = await startRedisServer();
  cluster = await startRedisCluster(3);
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await cluster?.stop();
});

describePresenceDeployment("redis (standalone redis-server)", {
  createDeployment: deploymentOn(
    ([proxy]) => new Redis(proxy!.port, "127.0.0.1", { maxRetriesPerRequest: 1 }),
    () => [server.port],
  ),
  deadNodeTimeoutMs: DEAD_NODE_TIMEOUT_MS,
});

describePresenceDeployment("redis (a 3-master Redis Cluster)", {
  createDeployment: deploymentOn(
    (proxies) =>
      new Cluster(
        proxies.map((proxy) => ({ host: "127.0.0.1", port: proxy.port })),
        {
          // the masters announce their own ports: route this node's traffic through its proxies
          natMap: Object.fromEntries(cluster.ports.map((port, i) => [`127.0.0.1:${port}`, { host: "127.0.0.1", port: proxies[i]!.port }])),
        },
      ),
    () => cluster.ports,
  ),
  deadNodeTimeoutMs: DEAD_NODE_TIMEOUT_MS,
});
