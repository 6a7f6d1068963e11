import type { Cluster, Redis } from "ioredis";
import apply from "./scripts/apply.lua";
import cleanupRooms from "./scripts/cleanup-rooms.lua";
import cleanup from "./scripts/cleanup.lua";
import heartbeat from "./scripts/heartbeat.lua";

type Client = Redis | Cluster;

/** The scripts as commands on a client: EVALSHA, falling back to EVAL on NOSCRIPT. Keys first, then arguments. */
export interface PresenceCommands {
  presenceApply(numberOfKeys: number, ...keysAndArgs: string[]): Promise<number[]>;
  presenceHeartbeat(processes: string, cleanups: string, ...args: string[]): Promise<string[]>;
  presenceCleanup(processes: string, cleanups: string, users: string, connections: string, info: string, ...args: string[]): Promise<string[]>;
  presenceCleanupRooms(numberOfKeys: number, ...keysAndArgs: string[]): Promise<string[]>;
}

export function defineCommands(client: Client): Client & PresenceCommands {
  // apply and cleanup-rooms take a varying number of room keys: numberOfKeys comes first in each call
  client.defineCommand("presenceApply", { lua: apply });
  client.defineCommand("presenceHeartbeat", { numberOfKeys: 2, lua: heartbeat });
  client.defineCommand("presenceCleanup", { numberOfKeys: 5, lua: cleanup });
  client.defineCommand("presenceCleanupRooms", { lua: cleanupRooms });
  return client as Client & PresenceCommands;
}
