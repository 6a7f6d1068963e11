import type { Cluster, Redis } from "ioredis";
import apply from "./scripts/apply.lua";
import cleanup from "./scripts/cleanup.lua";
import heartbeat from "./scripts/heartbeat.lua";

type Client = Redis | Cluster;

/** The scripts as commands on a client: EVALSHA, falling back to EVAL on NOSCRIPT. */
export interface PresenceCommands {
  presenceApply(processes: string, users: string, connections: string, ...args: string[]): Promise<number[]>;
  presenceHeartbeat(processes: string, cleanups: string, ...args: string[]): Promise<string[]>;
  presenceCleanup(
    processes: string,
    cleanups: string,
    users: string,
    connections: string,
    ...args: string[]
  ): Promise<string[]>;
}

export function defineCommands(client: Client): Client & PresenceCommands {
  client.defineCommand("presenceApply", { numberOfKeys: 3, lua: apply });
  client.defineCommand("presenceHeartbeat", { numberOfKeys: 2, lua: heartbeat });
  client.defineCommand("presenceCleanup", { numberOfKeys: 4, lua: cleanup });
  return client as Client & PresenceCommands;
}
