import { ConnectionConflictError } from "./errors";
import { SetMap } from "./set-map";

/**
 * The counting rules, in one place. A connection belongs to one user; a user
 * is online while they hold at least one connection. Connecting a connection
 * that is already counted, or disconnecting one that is not, changes nothing,
 * so retries and repeats are harmless and no count can go negative.
 *
 * This is the classic recipe's Map made exact: it tracks connection ids, not
 * bare counters, which is what makes repeats idempotent.
 */
export class ConnectionCounter {
  readonly #userByConnection = new Map<string, string>();
  readonly #connectionsByUser = new SetMap<string>();

  /** Counts `connectionId` for `userId`; true when the user went offline -> online. */
  connect(connectionId: string, userId: string): boolean {
    const existing = this.#userByConnection.get(connectionId);
    if (existing !== undefined) {
      if (existing !== userId) throw new ConnectionConflictError(connectionId, userId, existing);
      return false;
    }
    this.#userByConnection.set(connectionId, userId);
    const wasOnline = this.#connectionsByUser.has(userId);
    this.#connectionsByUser.add(userId, connectionId);
    return !wasOnline;
  }

  /**
   * Uncounts `connectionId`. Returns the user id when this left its user
   * offline, `undefined` otherwise (including for an unknown connection).
   */
  disconnect(connectionId: string): string | undefined {
    const userId = this.#userByConnection.get(connectionId);
    if (userId === undefined) return undefined;
    this.#userByConnection.delete(connectionId);
    this.#connectionsByUser.delete(userId, connectionId);
    return this.#connectionsByUser.has(userId) ? undefined : userId;
  }

  userOf(connectionId: string): string | undefined {
    return this.#userByConnection.get(connectionId);
  }

  isOnline(userId: string): boolean {
    return this.#connectionsByUser.has(userId);
  }

  connectionsOf(userId: string): number {
    return this.#connectionsByUser.count(userId);
  }

  /** Number of online users. */
  get usersCount(): number {
    return this.#connectionsByUser.size;
  }

  /** Number of counted connections. */
  get connectionsCount(): number {
    return this.#userByConnection.size;
  }

  users(): IterableIterator<string> {
    return this.#connectionsByUser.keys();
  }

  /** Every counted connection as `[connectionId, userId]`. */
  connections(): IterableIterator<[string, string]> {
    return this.#userByConnection.entries();
  }

  clear(): void {
    this.#userByConnection.clear();
    this.#connectionsByUser.clear();
  }
}
