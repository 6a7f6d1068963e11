import type { PresenceStore, Transition } from "@presence/core";
import type { Server, Socket } from "socket.io";

/** A channel's name, as clients say it: letters, digits, spaces, `_`, `.` and `-`, up to 64 characters. */
export const CHANNEL_NAME = /^[\p{L}\p{N} _.-]{1,64}$/u;
export const CHANNEL_NAME_RULE = "a room name is 1 to 64 letters, digits, spaces, _ . or -";

const PREFIX = "channel:";

/**
 * The Socket.IO room of a channel's members. Prefixed, so that no name a
 * client picks is ever a raw Socket.IO room: not a socket's own room (its
 * id), not the binding's internal `presence:sync:` rooms.
 */
export const channelRoom = (name: string): string => `${PREFIX}${name}`;

/**
 * Which rooms presence tracks: channels, by the client's name. The binding
 * follows the adapter's `join-room` / `leave-room` events; the real ones
 * name the prefixed room (which has a colon, so it is never tracked), and
 * `joinChannel` adds one under the client's name. Presence, its queries, the
 * `@presence/client` room views and the events all speak the client's name,
 * while the members are in the prefixed room.
 */
export const tracksChannel = (room: string): boolean => CHANNEL_NAME.test(room);

/** Puts a socket in a channel (a repeated join changes nothing). */
export async function joinChannel(socket: Socket, name: string): Promise<void> {
  const room = channelRoom(name);
  if (socket.rooms.has(room)) return;
  await socket.join(room);
  socket.nsp.adapter.emit("join-room", name, socket.id);
}

/** Takes a socket out of a channel (leaving one it is not in changes nothing). */
export async function leaveChannel(socket: Socket, name: string): Promise<void> {
  const room = channelRoom(name);
  if (!socket.rooms.has(room)) return;
  await socket.leave(room);
  socket.nsp.adapter.emit("leave-room", name, socket.id);
}

/**
 * A socket that Socket.IO's connection state recovery brought back (standalone)
 * is back in its channels' rooms: presence hears of the channels again, in
 * case the leave grace ran out meanwhile (if not, the join changes nothing).
 */
export function rejoinChannels(socket: Socket): void {
  for (const room of socket.rooms) {
    if (room.startsWith(PREFIX)) socket.nsp.adapter.emit("join-room", room.slice(PREFIX.length), socket.id);
  }
}

/** The demo's own server-side event between nodes: a channel's join or leave, for every node's members. */
const RELAYED = "presence-demo:channel-transition";
/** How many (channel, user) pairs a node remembers the last version of; the oldest are forgotten first. */
const REMEMBERED = 100_000;

/**
 * `"user has joined"` / `"user has left"` with `(room, userId, ...)` for the
 * channel's members, the room being the client's name. The binding sends
 * these to the Socket.IO room of the tracked name, where nobody is (the
 * members are in the prefixed room), so the demo sends them itself, the way
 * the binding does: every node hears every channel transition (its store's,
 * and the others' over `serverSideEmit`) and sends it to its own members in
 * the decider's order, dropping one older than the last sent for that user
 * in that channel.
 */
export function sendChannelEvents(io: Server, store: PresenceStore, multiNode: boolean): void {
  const last = new Map<string, number>();
  const deliver = (transition: Transition) => {
    if (transition.type !== "joined" && transition.type !== "left") return;
    const { version, room, userId } = transition;
    if (version !== undefined) {
      const key = `${room} ${userId}`;
      const previous = last.get(key);
      if (previous !== undefined && previous >= version) return;
      last.delete(key); // re-inserted last: the map stays ordered oldest first
      last.set(key, version);
      if (last.size > REMEMBERED) last.delete(last.keys().next().value!);
    }
    const tail = version === undefined ? [] : [version];
    const members = io.local.to(channelRoom(room));
    if (transition.type === "joined") members.emit("user has joined", room, userId, transition.info ?? null, ...tail);
    else members.emit("user has left", room, userId, ...tail);
  };
  store.onTransition((transition) => {
    if (transition.type !== "joined" && transition.type !== "left") return;
    deliver(transition);
    if (multiNode) io.serverSideEmit(RELAYED, transition);
  });
  if (multiNode) {
    io.on(RELAYED, (transition: Partial<Transition> | null) => {
      if (typeof transition?.userId === "string" && "room" in transition && typeof transition.room === "string") deliver(transition as Transition);
    });
  }
}
