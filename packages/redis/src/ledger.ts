import { knownField, membershipField } from "./encoding";
import type { Operation, OperationOutcome } from "./operations";

/**
 * What Redis confirmed of this process's connections and room memberships
 * under its current process id: who was announced online through it. A
 * data loss takes exactly this away from the announced state, so the
 * recovery writes it into the known hash (as `knownField`s). The truth of
 * the open connections is the store's `LocalPresence`; this is only the
 * part Redis answered for.
 */
export class Ledger {
  #processId: string | undefined;
  readonly #connections = new Map<string, string>();
  /** membershipField(connection, room) -> known field of (room, user) */
  readonly #memberships = new Map<string, string>();

  /** The process id whose confirmations this ledger keeps. */
  get processId(): string | undefined {
    return this.#processId;
  }

  /** Starts over under a new process id: what the old one confirmed is no longer Redis's. */
  reset(processId: string): void {
    this.#processId = processId;
    this.#connections.clear();
    this.#memberships.clear();
  }

  /** Keeps what Redis answered for an operation; answers under another process id are ignored. */
  note(processId: string, operation: Operation, outcome: OperationOutcome): void {
    if (processId !== this.#processId || outcome.type === "conflict") return;
    switch (operation.kind) {
      case "connect":
      case "republish":
        this.#connections.set(operation.connectionId, operation.userId);
        break;
      case "disconnect":
        this.#connections.delete(operation.connectionId);
        break;
      case "join":
        if (this.#connections.has(operation.connectionId)) {
          this.#memberships.set(membershipField(operation.connectionId, operation.room), knownField({ userId: operation.userId, room: operation.room }));
        }
        break;
      case "leave":
        this.#memberships.delete(membershipField(operation.connectionId, operation.room));
        break;
      case "update":
        break;
    }
  }

  /** Who was announced online (and in which rooms) through this process id, as known fields. */
  account(): string[] {
    const users = new Set([...this.#connections.values()].map((userId) => knownField({ userId })));
    return [...users, ...new Set(this.#memberships.values())];
  }
}
