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
  /** hash: process id -> "cursor|claim expiry|cleaner id", for cleanups in progress */
  cleanups: string;
  /** hash: user id -> open connections across the deployment */
  users: string;
  /** hash: user id -> info JSON, while the user is online */
  info: string;
  /** hash per process: connection id -> user id */
  connections(processId: string): string;
  /** hash per process: "<#connection id>:<connection id><room>" -> user id */
  memberships(processId: string): string;
  /** hash per room: user id -> connections in the room */
  room(room: string): string;
}

/** A membership's field: the connection id's length first, so that any connection id and room split back apart. */
export const membershipField = (connectionId: string, room: string) => `${connectionId.length}:${connectionId}${room}`;

/** The room of a membership field (the inverse of {@link membershipField}). */
export function roomOfMembership(field: string): { connectionId: string; room: string } {
  const colon = field.indexOf(":");
  const length = Number(field.slice(0, colon));
  return { connectionId: field.slice(colon + 1, colon + 1 + length), room: field.slice(colon + 1 + length) };
}

export function presenceKeys(prefix: string): PresenceKeys {
  if (prefix.length === 0 || /[{}]/.test(prefix)) {
    throw new TypeError(`the key prefix must be non-empty and free of braces, got ${JSON.stringify(prefix)}`);
  }
  const tag = `{${prefix}}`;
  return {
    processes: `${tag}:processes`,
    cleanups: `${tag}:cleanups`,
    users: `${tag}:users`,
    info: `${tag}:info`,
    connections: (processId) => `${tag}:connections:${processId}`,
    memberships: (processId) => `${tag}:memberships:${processId}`,
    room: (room) => `${tag}:room:${createHash("sha1").update(room, "utf8").digest("hex")}`,
  };
}
