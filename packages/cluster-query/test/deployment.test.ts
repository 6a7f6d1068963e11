import { describePresenceDeployment, eventually, type PresenceDeployment } from "@presence/core/testing";
import { describeBindingScenarios } from "@presence/socketio/testing";
import type { Server } from "socket.io";
import { expect } from "vitest";
import { createClusterQueryStore } from "../src";
import { createBus, startNode } from "./in-process-cluster";

const HEARTBEAT = { heartbeatInterval: 100, heartbeatTimeout: 400 };

/** `n` Socket.IO servers on one in-memory cluster bus, each with a cluster-query store on its main namespace. */
async function deployment(nodes: number): Promise<PresenceDeployment> {
  const bus = createBus(HEARTBEAT);
  const servers: Server[] = [];
  for (let i = 0; i < nodes; i++) servers.push((await startNode(bus)).io);
  const stores = servers.map((io) => createClusterQueryStore(io));
  await eventually(async () => {
    for (const io of servers) expect(await io.of("/").adapter.serverCount()).toBe(nodes);
  }, 10_000);
  return {
    stores,
    async kill(node) {
      const nsp = servers[node]!.of("/");
      const member = [...bus.members].find((m) => m.nsp === nsp);
      if (!member) throw new Error(`node ${node} is not on the bus`);
      member.dead = true; // no goodbye, nothing more sent or received: as if killed
    },
    async close() {
      await Promise.allSettled(stores.map((store) => store.close()));
      await Promise.all(servers.map((io) => new Promise<void>((resolve) => io.close(() => resolve()))));
    },
  };
}

describePresenceDeployment("cluster-query (3 Socket.IO servers on an in-memory cluster bus)", {
  createDeployment: deployment,
  // the adapter drops a silent node after its heartbeatTimeout (400 ms here)
  deadNodeTimeoutMs: 10_000,
  unmet: {
    concurrentTransitions:
      "transitions are decided by asking the other nodes, with no shared record: two nodes that see one user at the same instant may both or neither report the transition",
    deadNodeTransitions:
      "nothing outlives a node: a killed node's users vanish from every answer once the adapter drops it, but no survivor knows they were there to announce them",
  },
});

describeBindingScenarios("cluster-query store (servers on an in-memory cluster bus)", {
  createStores: deployment,
});
