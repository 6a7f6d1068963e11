import { MAX_USER_STATES, type PresenceStore, type Transition, type UserState } from "@presence/core";
import type { Namespace } from "socket.io";
import type { DeliveryOrder, LastDelivered } from "./delivery-order";
import { dropIfSlow, socketsIn } from "./sync-guard";

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
/** How often the sockets sent events are checked for reading too slowly, in ms. */
const SWEEP_MS = 250;

/**
 * The classic per-user events ("user has connected", ...), sent by every node
 * to its own sockets, in the decider's order per user: the node's delivery
 * order (delivery-order.ts) already dropped a transition older than the last
 * one delivered for its user (or user in a room), so an observer's last event
 * for a user matches the truth. Only a change is sent: joins and leaves
 * alternate per user, and an update repeated or late is dropped like any
 * event. (A join and the leave after it, both decided on a node killed
 * before it relayed them, never reach the other nodes: the second of two
 * leaves in a row is dropped, and the second of two joins is sent as an
 * update when it carries info.) Arguments: `(userId, info | null, version)`
 * on connect and update, `(userId, version)` on disconnect,
 * `(room, userId, info | null, version)` on a room join,
 * `(room, userId, version)` on a room leave; the version (the decider's) is
 * left out for a store that does not version its transitions. A correction
 * sent after a loss carries the version of the read it comes from.
 */
export class UserEvents {
  readonly #namespace: Namespace;
  readonly #names: TransitionEventNames;
  /** The Socket.IO room of a presence room's members. */
  readonly #socketRoom: (room: string) => string;
  /** The node's delivery order: what it last delivered per user and room member. */
  readonly #order: DeliveryOrder;

  /** Output past which a socket is disconnected as a slow reader (the sync's `maxBufferedBytes`). */
  readonly #maxBufferedBytes: number;
  /** Since the last sweep: whether events went to `EVENTS_ROOM`, and the Socket.IO rooms room events went to. */
  #sentToAll = false;
  readonly #sentToRooms = new Set<string>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(namespace: Namespace, names: TransitionEventNames, order: DeliveryOrder, socketRoom: (room: string) => string, maxBufferedBytes: number) {
    this.#namespace = namespace;
    this.#names = names;
    this.#order = order;
    this.#socketRoom = socketRoom;
    this.#maxBufferedBytes = maxBufferedBytes;
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS).unref();
  }

  close(): void {
    clearInterval(this.#sweeper);
  }

  /** A transition the node delivers, with what it last delivered for the same subject (`previous`, see `DeliveryOrder.admit`). */
  send(transition: Transition, last: Pick<LastDelivered, "present"> | undefined): void {
    const tail = transition.version === undefined ? [] : [transition.version];
    const names = this.#names;
    if (transition.type === "updated") {
      // an update for a user last shown offline here follows a join that never arrived: it is sent as that join
      const name = last?.present === false ? names.connected : names.updated;
      return this.#toAll(name, transition.userId, transition.info, ...tail);
    }
    const present = transition.type === "connected" || transition.type === "joined";
    if (last?.present === present) {
      // no change here: the opposite transition between them never arrived (decided on a node killed before it relayed it).
      // A join's info may be new: it is sent as an update.
      if (transition.type === "connected" && transition.info !== undefined) this.#toAll(names.updated, transition.userId, transition.info, ...tail);
      return;
    }
    switch (transition.type) {
      case "connected":
        return this.#toAll(names.connected, transition.userId, transition.info ?? null, ...tail);
      case "disconnected":
        return this.#toAll(names.disconnected, transition.userId, ...tail);
      case "joined":
        // to the room's members only
        return this.#toMembers(transition.room, names.joined, transition.room, transition.userId, transition.info ?? null, ...tail);
      case "left":
        return this.#toMembers(transition.room, names.left, transition.room, transition.userId, ...tail);
    }
  }

  /**
   * After transitions were lost on their way here (a dropped relay, a node
   * gone silent): reads who is online, then asks the store again for each
   * user whose last event here is no longer the truth, and sends them a
   * corrective event carrying the version that read is as of (see
   * `PresenceStore.userStates`), so that it sits in the decider's order: a
   * change delivered here since, as new as the read, keeps its word, and one
   * older than the read that arrives later is late. (A store that does not
   * version: a change delivered after the read started keeps its word.)
   * Room events are not corrected.
   */
  async reconcile(store: PresenceStore): Promise<void> {
    const online = new Set<string>();
    for await (const page of store.users()) for (const user of page) online.add(user.userId);
    const suspects = [...online].filter((userId) => !this.#order.last(`u:${userId}`)?.present);
    for (const userId of this.#order.present()) if (!online.has(userId)) suspects.push(userId);
    for (let i = 0; i < suspects.length; i += MAX_USER_STATES) {
      const seq = this.#order.seq;
      for (const state of await store.userStates(suspects.slice(i, i + MAX_USER_STATES))) this.#correct(state, seq);
    }
  }

  /** Sends one user a corrective event, unless what was last delivered here says the same or is as new as the read. */
  #correct({ userId, online, info, version }: UserState, seq: number): void {
    const subject = `u:${userId}`;
    const last = this.#order.last(subject);
    if ((last?.present ?? false) === online) return;
    if (last !== undefined && (version === undefined ? last.seq > seq : last.version >= version)) return;
    this.#order.correct(subject, online, version, info);
    const tail = version === undefined ? [] : [version];
    if (online) this.#toAll(this.#names.connected, userId, info ?? null, ...tail);
    else this.#toAll(this.#names.disconnected, userId, ...tail);
  }

  #toAll(name: string, ...args: unknown[]): void {
    this.#sentToAll = true;
    this.#namespace.local.to(EVENTS_ROOM).emit(name, ...args);
  }

  #toMembers(room: string, name: string, ...args: unknown[]): void {
    const socketRoom = this.#socketRoom(room);
    this.#sentToRooms.add(socketRoom);
    this.#namespace.local.to(socketRoom).emit(name, ...args);
  }

  /** Disconnects the sockets sent events since the last sweep whose output backs up: no slow reader makes the server hold unbounded events. */
  #sweep(): void {
    const rooms = this.#sentToAll ? [EVENTS_ROOM, ...this.#sentToRooms] : [...this.#sentToRooms];
    this.#sentToAll = false;
    this.#sentToRooms.clear();
    for (const room of rooms) for (const socket of socketsIn(this.#namespace, room)) dropIfSlow(socket, this.#maxBufferedBytes);
  }
}
