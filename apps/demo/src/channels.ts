import type { Socket } from "socket.io";

/** A channel's name, as clients say it: letters, digits, spaces, `_`, `.` and `-`, up to 64 characters. */
export const CHANNEL_NAME = /^[\p{L}\p{N} _.-]{1,64}$/u;
export const CHANNEL_NAME_RULE = "a room name is 1 to 64 letters, digits, spaces, _ . or -";

const PREFIX = "channel:";

/**
 * The most channels one connection may be in: each is a Socket.IO room
 * membership and a store membership, so no socket may hold unbounded ones
 * (the binding follows at most 64 rooms per connection).
 */
export const MAX_CHANNELS_PER_CONNECTION = 32;

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
 * `joinChannel` adds one under the client's name. Presence, its queries and
 * the `@presence/client` room views speak the client's name, while the
 * members are in the prefixed room. The binding would send a channel's join
 * and leave events to the Socket.IO room of the tracked name, a raw one
 * (maybe a socket's own), so its events are off and the demo sends them
 * (presence-events.ts).
 */
export const tracksChannel = (room: string): boolean => CHANNEL_NAME.test(room);

/** Puts a socket in a channel (a repeated join changes nothing); false when it is in too many already. */
export async function joinChannel(socket: Socket, name: string): Promise<boolean> {
  const room = channelRoom(name);
  if (socket.rooms.has(room)) return true;
  if ([...socket.rooms].filter((joined) => joined.startsWith(PREFIX)).length >= MAX_CHANNELS_PER_CONNECTION) return false;
  await socket.join(room);
  socket.nsp.adapter.emit("join-room", name, socket.id);
  return true;
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
