import type { PresenceStore, Transition } from "@presence/core";
import type { Server } from "socket.io";
import { channelRoom } from "./channels";

/** Between nodes: a transition, for every node's clients. */
const RELAYED = "presence-demo:transition";
/** How many users (and channel members) a node remembers the last version of; the oldest are forgotten first. */
const REMEMBERED = 100_000;

/**
 * The per-user events, with the binding's names and arguments:
 * `"user has connected"` `(userId, info | null, version)`, `"user has
 * disconnected"` `(userId, version)`, `"user has updated"` `(userId, info,
 * version)` to every client (every socket is signed in, and may see every
 * user), and `"user has joined"` `(room, userId, info | null, version)`,
 * `"user has left"` `(room, userId, version)` to the channel's members, the
 * room being the client's name (the version is left out by a store that does
 * not version its changes).
 *
 * Sent the way the binding sends its own (which are off: see channels.ts):
 * every node hears every transition, its store's and the others' over
 * `serverSideEmit`, and sends it to its own clients in the decider's order,
 * dropping one older than the last it sent for that user (or that user in
 * that channel), so that a client's last event about a user is the truth.
 */
export function sendPresenceEvents(io: Server, store: PresenceStore, multiNode: boolean): void {
  const last = new Map<string, number>();
  const stale = (key: string, version: number | undefined): boolean => {
    if (version === undefined) return false;
    const previous = last.get(key);
    if (previous !== undefined && previous >= version) return true;
    last.delete(key); // re-inserted last: the map stays ordered oldest first
    last.set(key, version);
    if (last.size > REMEMBERED) last.delete(last.keys().next().value!);
    return false;
  };
  const deliver = (transition: Transition) => {
    const key = "room" in transition ? `r:${transition.room} ${transition.userId}` : `u:${transition.userId}`;
    if (stale(key, transition.version)) return;
    const tail = transition.version === undefined ? [] : [transition.version];
    const everyone = io.local;
    switch (transition.type) {
      case "connected":
        return void everyone.emit("user has connected", transition.userId, transition.info ?? null, ...tail);
      case "disconnected":
        return void everyone.emit("user has disconnected", transition.userId, ...tail);
      case "updated":
        return void everyone.emit("user has updated", transition.userId, transition.info, ...tail);
      case "joined":
        return void everyone.to(channelRoom(transition.room)).emit("user has joined", transition.room, transition.userId, transition.info ?? null, ...tail);
      case "left":
        return void everyone.to(channelRoom(transition.room)).emit("user has left", transition.room, transition.userId, ...tail);
    }
  };
  store.onTransition((transition) => {
    deliver(transition);
    if (multiNode) io.serverSideEmit(RELAYED, transition);
  });
  if (multiNode) {
    io.on(RELAYED, (transition: Partial<Transition> | null) => {
      if (typeof transition?.type === "string" && typeof transition.userId === "string") deliver(transition as Transition);
    });
  }
}
