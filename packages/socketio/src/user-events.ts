import { MAX_USER_STATES, type PresenceStore, type Transition, type UserState } from "@presence/core";
import type { Namespace } from "socket.io";
import type { DeliveryOrder, LastDelivered } from "./delivery-order";

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

  constructor(namespace: Namespace, names: TransitionEventNames, order: DeliveryOrder, socketRoom: (room: string) => string = (room) => room) {
    this.#namespace = namespace;
    this.#names = names;
    this.#order = order;
    this.#socketRoom = socketRoom;
  }

  /** A transition the node delivers, with what it last delivered for the same subject (`previous`, see `DeliveryOrder.admit`). */
  send(transition: Transition, last: Pick<LastDelivered, "present"> | undefined): void {
    const tail = transition.version === undefined ? [] : [transition.version];
    const names = this.#names;
    const local = this.#namespace.local;
    if (transition.type === "updated") {
      // an update for a user last shown offline here follows a join that never arrived: it is sent as that join
      const name = last?.present === false ? names.connected : names.updated;
      return void local.to(EVENTS_ROOM).emit(name, transition.userId, transition.info, ...tail);
    }
    const present = transition.type === "connected" || transition.type === "joined";
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
    if (online) this.#namespace.local.to(EVENTS_ROOM).emit(this.#names.connected, userId, info ?? null, ...tail);
    else this.#namespace.local.to(EVENTS_ROOM).emit(this.#names.disconnected, userId, ...tail);
  }
}
