import type { Socket } from "socket.io";

/**
 * Which local sockets follow each user through a user-list subscription.
 * An index of the binding's own, not a Socket.IO room per followed user: a
 * room per friend costs each socket a room name and an entry in the
 * adapter's per-socket set for every user it follows (20 friends, 20 rooms),
 * and the index is only ever read on this node.
 */
export class Followers {
  readonly #byUser = new Map<string, Set<Socket>>();
  /** What each socket follows (a socket has one list, replaced whole by each subscribe). */
  readonly #lists = new WeakMap<Socket, readonly string[]>();

  /** The sockets following a user. */
  of(userId: string): Iterable<Socket> {
    return this.#byUser.get(userId) ?? [];
  }

  /** Replaces a socket's list (an empty list: it follows no one). */
  set(socket: Socket, userIds: readonly string[]): void {
    const before = this.#lists.get(socket);
    if (before === undefined && userIds.length > 0) socket.once("disconnect", () => this.set(socket, []));
    const next = new Set(userIds);
    for (const userId of before ?? []) {
      if (next.has(userId)) continue;
      const sockets = this.#byUser.get(userId);
      sockets?.delete(socket);
      if (sockets?.size === 0) this.#byUser.delete(userId);
    }
    for (const userId of next) {
      const sockets = this.#byUser.get(userId);
      if (sockets) sockets.add(socket);
      else this.#byUser.set(userId, new Set([socket]));
    }
    if (next.size > 0 || before !== undefined) this.#lists.set(socket, [...next]);
  }

  /** How many users are followed by someone here (for tests). */
  get size(): number {
    return this.#byUser.size;
  }
}
