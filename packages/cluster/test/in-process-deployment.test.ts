import { describePresenceDeployment, type PresenceDeployment } from "@presence/core/testing";
import { ClusterStore, PresencePrimary, createMemoryChannel, type MemoryWorkerChannel } from "../src";

/** A primary and `nodes` "workers" in one process, each with its own in-memory channel and store. */
function deployment(nodes: number): Promise<PresenceDeployment> {
  const channel = createMemoryChannel();
  const primary = new PresencePrimary(channel.primary);
  const links: MemoryWorkerChannel[] = Array.from({ length: nodes }, () => channel.worker());
  const stores = links.map((link) => new ClusterStore({ channel: link }));
  return Promise.resolve({
    stores,
    // the worker vanishes as a killed process does: the primary hears its channel close, nothing else
    kill: async (node) => links[node]!.kill(),
    async close() {
      await Promise.allSettled(stores.map((store) => store.close()));
      primary.close();
    },
  });
}

describePresenceDeployment("cluster store (a primary and workers on in-memory channels)", {
  createDeployment: deployment,
  deadNodeTimeoutMs: 10_000,
});

// the binding scenarios run on this store in in-process.test.ts
