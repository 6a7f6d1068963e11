import { describePresenceStore } from "@presence/core/testing";
import { describeBindingScenarios } from "@presence/socketio/testing";
import { ClusterStore, PresencePrimary, createMemoryChannel } from "../src";

/** One deployment in one process: a primary and `count` "workers", each with its own channel and store. */
function deployment(count: number): ClusterStore[] {
  const channel = createMemoryChannel();
  new PresencePrimary(channel.primary);
  return Array.from({ length: count }, () => new ClusterStore({ channel: channel.worker() }));
}

describePresenceStore("cluster store (a primary and a worker in one process)", {
  create: () => deployment(1)[0]!,
  numRuns: 50,
});

describeBindingScenarios("cluster store (workers in one process)", {
  createStores: async (count) => deployment(count),
});
