import type { PresenceStore, Transition, UserInfo } from "@presence/core";
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
 * dropped, so an observer's last event for a user matches the truth. Only a
 * change is sent: joins and leaves alternate per user, and an update repeated
 * or late is dropped like any event. (A join and the leave
 * after it, both decided on a node killed before it relayed them, never
 * reach the other nodes: the second of two leaves in a row is dropped, and
 * the second of two joins is sent as an update when it carries info.)
 * Arguments: `(userId, info | null, version)` on connect and update,
 * `(userId, version)` on disconnect, `(room, userId, info | null, version)` on
 * a room join, `(room, userId, version)` on a room leave; the version is left
 * out for a store that does not version its transitions.
 */
export class UserEvents {
  readonly #namespace: Namespace;
  readonly #names: TransitionEventNames;
  /** The Socket.IO room of a presence room's members. */
  readonly #socketRoom: (room: string) => string;
  /** The last change sent per user (`u:<id>`) and per room member (`r:<room> <id>`): its version and whether it said "in", oldest first. */
  readonly #last = new Map<string, { version: number | null; present: boolean }>();

  constructor(namespace: Namespace, names: TransitionEventNames, socketRoom: (room: string) => string = (room) => room) {
    this.#namespace = namespace;
    this.#names = names;
    this.#socketRoom = socketRoom;
  }

  send(transition: Transition): void {
    const version = transition.version ?? null;
    const key = "room" in transition ? `r:${transition.room} ${transition.userId}` : `u:${transition.userId}`;
    const last = this.#last.get(key);
    if (version !== null && last?.version != null && last.version >= version) return;
    const tail = version === null ? [] : [version];
    const names = this.#names;
    const local = this.#namespace.local;
    if (transition.type === "updated") {
      this.#remember(key, version, true);
      // an update for a user last shown offline here follows a join that never arrived: it is sent as that join
      const name = last?.present === false ? names.connected : names.updated;
      return void local.to(EVENTS_ROOM).emit(name, transition.userId, transition.info, ...tail);
    }
    const present = transition.type === "connected" || transition.type === "joined";
    this.#remember(key, version, present);
    if (last?.present === present) {
      // no change here: the opposite transition between them never arrived (decided on a node killed before it relayed it).
      // A join's info may be new: it is sent as an update.
      if (transition.type === "connected" && transition.info !== undefined) local.to(EVENTS_ROOM).emit(names.updated, transition.userId, transition.info, ...tail);
      return;
    }
    switch (transition.type) {
      case "connected":
        return void local.to(EVENTS_ROOM).emit(names.connected, transition.userId, transition.info ?? null, ...tail);
      case "disconnected":
        return void local.to(EVENTS_ROOM).emit(names.disconnected, transition.userId, ...tail);
      case "joined":
        // to the room's members only
        return void local.to(this.#socketRoom(transition.room)).emit(names.joined, transition.room, transition.userId, transition.info ?? null, ...tail);
      case "left":
        return void local.to(this.#socketRoom(transition.room)).emit(names.left, transition.room, transition.userId, ...tail);
    }
  }

  /**
   * After transitions were lost on their way here (a dropped relay, a node
   * gone silent), reads who is online and sends each user whose last event
   * here is no longer the truth a corrective one, versioned `version` (what
   * this node had heard when the read started): a user whose last event
   * here is newer than the read keeps it. Room events are not corrected.
   */
  async reconcile(store: PresenceStore, version: number | null): Promise<void> {
    const online = new Map<string, UserInfo | undefined>();
    for await (const page of store.users()) for (const user of page) online.set(user.userId, user.info);
    const stale = (last: { version: number | null } | undefined) => version !== null && last?.version != null && last.version > version;
    for (const [userId, info] of online) {
      const last = this.#last.get(`u:${userId}`);
      if (last?.present || stale(last)) continue;
      this.send({ type: "connected", userId, ...(info === undefined ? {} : { info }), ...(version === null ? {} : { version }) });
    }
    for (const [key, last] of [...this.#last]) {
      if (!key.startsWith("u:") || !last.present || online.has(key.slice(2)) || stale(last)) continue;
      this.send({ type: "disconnected", userId: key.slice(2), ...(version === null ? {} : { version }) });
    }
  }

  #remember(key: string, version: number | null, present: boolean): void {
    this.#last.delete(key); // re-inserted last: the map stays ordered oldest first
    this.#last.set(key, { version, present });
    if (this.#last.size > REMEMBERED) this.#last.delete(this.#last.keys().next().value!);
  }
}
