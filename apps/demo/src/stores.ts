import { createClusterQueryStore } from "@presence/cluster-query";
import type { PresenceStore } from "@presence/core";
import { MemoryStore } from "@presence/memory";
import type { Server } from "socket.io";
import type { DemoConfig } from "./config";

/** The store each mode counts in. */
export function storeFactory(config: DemoConfig): (io: Server) => PresenceStore {
  switch (config.mode) {
    case "standalone":
      return () => new MemoryStore();
    case "cluster":
      return (io) => createClusterQueryStore(io, { timeoutMs: 5500 });
    case "redis":
      throw new Error("redis mode is not available yet");
  }
}
