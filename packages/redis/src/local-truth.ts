import { ConnectionCounter } from "@presence/core";
import { pack, type OperationResult } from "./encoding";
import type { Op } from "./scripts";

/** Who was announced online (and in which rooms) through this process, as far as Redis had confirmed it. */
export interface Counted {
  users: Set<string>;
  /** pack(room, user) */
  memberships: Set<string>;
}

/**
 * The truth of this process: its open connections, their rooms and its
 * users' info (JSON), which it projects onto Redis; and what Redis confirmed
 * of it under the current process id, which is what a data loss takes away
 * from the announced state.
 */
export class LocalTruth {
  readonly connections = new ConnectionCounter();
  readonly rooms = new Map<string, Set<string>>();
  readonly info = new Map<string, string>();
  readonly #countedConnections = new Map<string, string>();
  /** pack(connection, room) -> pack(room, user) */
  readonly #countedMemberships = new Map<string, string>();

  /** Keeps what Redis answered for an operation under the current process id. */
  noteCounted(op: Op, result: OperationResult): void {
    if (result === -1) return;
    switch (op.op) {
      case "c":
      case "r":
        this.#countedConnections.set(op.connectionId, op.userId);
        break;
      case "d":
        this.#countedConnections.delete(op.connectionId);
        break;
      case "j":
        if (this.#countedConnections.has(op.connectionId)) this.#countedMemberships.set(pack(op.connectionId, op.room), pack(op.room, op.userId));
        break;
      case "l":
        this.#countedMemberships.delete(pack(op.connectionId, op.room));
        break;
    }
  }

  /** What was counted under the process id that is being left, then forgets it. */
  takeCounted(): Counted {
    const counted = { users: new Set(this.#countedConnections.values()), memberships: new Set(this.#countedMemberships.values()) };
    this.#countedConnections.clear();
    this.#countedMemberships.clear();
    return counted;
  }

  /** Whether `userId` is in `room` through one of this process's connections. */
  inRoom(userId: string, room: string): boolean {
    for (const [connectionId, rooms] of this.rooms) if (rooms.has(room) && this.connections.userOf(connectionId) === userId) return true;
    return false;
  }

  /**
   * The operations that republish this process's connections and room
   * memberships, except those still queued (`queued`: connection ids and
   * pack(connection, room)), which answer for themselves.
   */
  republishing(queued: ReadonlySet<string>): Op[] {
    const ops: Op[] = [];
    for (const [connectionId, userId] of this.connections.connections()) {
      if (queued.has(connectionId)) continue;
      ops.push({ op: "r", connectionId, userId, info: this.info.get(userId) ?? "" });
      for (const room of this.rooms.get(connectionId) ?? []) {
        if (!queued.has(pack(connectionId, room))) ops.push({ op: "j", connectionId, userId, room });
      }
    }
    return ops;
  }

  clear(): void {
    this.connections.clear();
    this.rooms.clear();
    this.info.clear();
    this.takeCounted();
  }
}
