import type { Transition } from "@presence/core";
import type { Namespace } from "socket.io";

/** The names of the per-user events. */
export interface TransitionEventNames {
  connected: string;
  disconnected: string;
  updated: string;
  joined: string;
  left: string;
}

/** The internal Socket.IO room of the sockets that may receive the per-user events (the binding's `authorize` decides). */
export const EVENTS_ROOM = "presence:sync:events";

/** How many users' (and room members') last versions a node remembers to drop stale events; the oldest are forgotten first. */
const REMEMBERED = 100_000;

/**
 * The classic per-user events ("user has connected", ...), sent by every node
 * to its own sockets, in the decider's order per user: an event older than
 * the last one sent for its user (or user in a room) arrived late and is
 * dropped, so an observer's last event for a user matches the truth.
 * Arguments: `(userId, info | null, version)` on connect and update,
 * `(userId, version)` on disconnect, `(room, userId, info | null, version)` on
 * a room join, `(room, userId, version)` on a room leave; the version is left
 * out for a store that does not version its transitions.
 */
export class UserEvents {
  readonly #namespace: Namespace;
  readonly #names: TransitionEventNames;
  /** The last version sent per user (`u:<id>`) and per room member (`r:<room> <id>`), oldest first. */
  readonly #last = new Map<string, number>();

  constructor(namespace: Namespace, names: TransitionEventNames) {
    this.#namespace = namespace;
    this.#names = names;
  }

  send(transition: Transition): void {
    const { version } = transition;
    const key = "room" in transition ? `r:${transition.room} ${transition.userId}` : `u:${transition.userId}`;
    if (version !== undefined) {
      const last = this.#last.get(key);
      if (last !== undefined && last >= version) return;
      this.#last.delete(key); // re-inserted last: the map stays ordered oldest first
      this.#last.set(key, version);
      if (this.#last.size > REMEMBERED) this.#last.delete(this.#last.keys().next().value!);
    }
    const tail = version === undefined ? [] : [version];
    const names = this.#names;
    const local = this.#namespace.local;
    switch (transition.type) {
      case "connected":
        return void local.to(EVENTS_ROOM).emit(names.connected, transition.userId, transition.info ?? null, ...tail);
      case "disconnected":
        return void local.to(EVENTS_ROOM).emit(names.disconnected, transition.userId, ...tail);
      case "updated":
        return void local.to(EVENTS_ROOM).emit(names.updated, transition.userId, transition.info, ...tail);
      case "joined":
        // to the room's members only
        return void local.to(transition.room).emit(names.joined, transition.room, transition.userId, transition.info ?? null, ...tail);
      case "left":
        return void local.to(transition.room).emit(names.left, transition.room, transition.userId, ...tail);
    }
  }
}
