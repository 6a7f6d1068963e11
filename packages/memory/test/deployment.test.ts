import { describePresenceDeployment } from "@presence/core/testing";
import { MemoryStore } from "../src";

const oneProcess = "one process is the whole deployment: every node is the same store, so no node can close or die apart from it";

describePresenceDeployment("memory (every node is the one process's store)", {
  createDeployment: async (nodes) => {
    const store = new MemoryStore();
    return { stores: Array.from({ length: nodes }, () => store), close: () => store.close() };
  },
  unmet: { nodeClose: oneProcess, deadNodeCleanup: oneProcess, deadNodeTransitions: oneProcess },
});
