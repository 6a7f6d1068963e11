import { MemoryStore } from "@presence/memory";
import { describeBindingScenarios } from "./scenarios";

describeBindingScenarios("memory store", {
  // one process, one store: every "node" of the deployment shares it
  createStores: async (count) => Array.from({ length: count }, () => new MemoryStore()).fill(new MemoryStore()),
});
