import { createHash } from "node:crypto";

/**
 * Every key of a deployment: `{prefix}:...`. The braces make the prefix the
 * Redis Cluster hash tag, so every key lands in one slot and every script
 * runs unchanged on a cluster. User ids are never part of a key name: they
 * are hash fields and script arguments only. Process ids are generated here;
 * a room's key carries the SHA-1 of its name, never the name itself.
 */
export interface PresenceKeys {
  /** zset: process id -> lease expiry (ms, Redis clock) */
  processes: string;
  /** hash: process id -> "cursor|claim expiry|cleaner id", for cleanups in progress (the cursor is a hint) */
  cleanups: string;
  /** string: the last id given to an outbox entry */
  outboxIds: string;
  /** string: the deployment's version counter, the decider's order of every transition (scripts/includes/version.lua) */
  version: string;
  /**
   * hash, after a data loss: who was announced online before it (see
   * `knownField` in encoding.ts), as the recovering processes had counted;
   * a leave is announced by whoever deletes the field
   */
  known: string;
  /** hash: user id -> open connections across the deployment */
  users: string;
  /** hash: user id -> info JSON, while the user is online */
  info: string;
  /** hash per process: connection id -> user id */
  connections(processId: string): string;
  /** hash per process: pack(connection id, room) -> user id (see encoding.ts) */
  memberships(processId: string): string;
  /** hash per process: `seq` (its last batch applied) and `reply` (that batch's results) */
  record(processId: string): string;
  /** list per process (as a cleaner): the leaves its cleanups found, until announced; moved to its own cleaner's when it dies */
  outbox(processId: string): string;
  /** hash per room: user id -> connections in the room */
  room(room: string): string;
}

export function presenceKeys(prefix: string): PresenceKeys {
  if (prefix.length === 0 || /[{}]/.test(prefix)) {
    throw new TypeError(`the key prefix must be non-empty and free of braces, got ${JSON.stringify(prefix)}`);
  }
  const tag = `{${prefix}}`;
  return {
    processes: `${tag}:processes`,
    cleanups: `${tag}:cleanups`,
    outboxIds: `${tag}:outbox-ids`,
    version: `${tag}:version`,
    known: `${tag}:known`,
    users: `${tag}:users`,
    info: `${tag}:info`,
    connections: (processId) => `${tag}:connections:${processId}`,
    memberships: (processId) => `${tag}:memberships:${processId}`,
    record: (processId) => `${tag}:process:${processId}`,
    outbox: (processId) => `${tag}:outbox:${processId}`,
    room: (room) => `${tag}:room:${createHash("sha1").update(room, "utf8").digest("hex")}`,
  };
}
