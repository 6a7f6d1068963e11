import type { Socket } from "socket.io";

/**
 * A user's followers stay an array up to this many (about 200 bytes for 20,
 * where a `Set` of 20 costs 1.3 KB), a `Set` beyond (so that a user followed
 * by thousands costs no scan per follower's disconnect).
 */
const ARRAY_MAX = 64;

/**
 * Which local sockets follow each user through a user-list subscription.
 * An index of the binding's own, not a Socket.IO room per followed user: a
 * room per friend costs each socket a room name and an entry in the
 * adapter's per-socket set for every user it follows (20 friends, 20 rooms),
 * and the index is only ever read on this node.
 */
export class Followers {
  readonly #byUser = new Map<string, Socket[] | Set<Socket>>();
  /** What each socket follows (a socket has one list, replaced whole by each subscribe). */
  readonly #lists = new WeakMap<Socket, readonly string[]>();
  /** One listener for every socket (called with the socket as `this`), not a closure each. */
  readonly #forget = (() => {
    const followers = this;
    return function (this: Socket) {
      followers.set(this, []);
    };
  })();

  /** The sockets following a user. */
  of(userId: string): Iterable<Socket> {
    return this.#byUser.get(userId) ?? [];
  }

  /** Replaces a socket's list (an empty list: it follows no one). */
  set(socket: Socket, userIds: readonly string[]): void {
    const before = this.#lists.get(socket);
    if (before === undefined && userIds.length > 0) socket.on("disconnect", this.#forget);
    const next = new Set(userIds);
    const previous = new Set(before);
    for (const userId of previous) if (!next.has(userId)) this.#remove(userId, socket);
    for (const userId of next) if (!previous.has(userId)) this.#add(userId, socket);
    if (next.size > 0 || before !== undefined) this.#lists.set(socket, [...next]);
  }

  #add(userId: string, socket: Socket): void {
    const sockets = this.#byUser.get(userId);
    if (sockets === undefined) this.#byUser.set(userId, [socket]);
    else if (sockets instanceof Set) sockets.add(socket);
    // a copy of the exact size: a push would grow the array to 17, then 41 slots
    else if (sockets.length < ARRAY_MAX) this.#byUser.set(userId, [...sockets, socket]);
    else this.#byUser.set(userId, new Set([...sockets, socket]));
  }

  #remove(userId: string, socket: Socket): void {
    const sockets = this.#byUser.get(userId);
    if (sockets instanceof Set) {
      sockets.delete(socket);
      if (sockets.size === 0) this.#byUser.delete(userId);
    } else if (sockets !== undefined) {
      const at = sockets.indexOf(socket);
      if (at < 0) return;
      // order does not matter: the last takes its place
      sockets[at] = sockets[sockets.length - 1]!;
      sockets.pop();
      if (sockets.length === 0) this.#byUser.delete(userId);
    }
  }

  /** How many users are followed by someone here (for tests). */
  get size(): number {
    return this.#byUser.size;
  }
}
