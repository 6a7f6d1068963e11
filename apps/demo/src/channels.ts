import type { Socket } from "socket.io";

/** A channel's name, as clients say it: letters, digits, spaces, `_`, `.` and `-`, up to 64 characters. */
export const CHANNEL_NAME = /^[\p{L}\p{N} _.-]{1,64}$/u;
export const CHANNEL_NAME_RULE = "a room name is 1 to 64 letters, digits, spaces, _ . or -";

/** The prefix of a channel's Socket.IO room; presence knows the channel by the rest (`rooms: { prefix }`). */
export const CHANNEL_PREFIX = "channel:";
const PREFIX = CHANNEL_PREFIX;

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

/** Puts a socket in a channel (a repeated join changes nothing); false when it is in too many already. */
export async function joinChannel(socket: Socket, name: string): Promise<boolean> {
  const room = channelRoom(name);
  if (socket.rooms.has(room)) return true;
  if ([...socket.rooms].filter((joined) => joined.startsWith(PREFIX)).length >= MAX_CHANNELS_PER_CONNECTION) return false;
  await socket.join(room);
  return true;
}

/** Takes a socket out of a channel (leaving one it is not in changes nothing). */
export async function leaveChannel(socket: Socket, name: string): Promise<void> {
  const room = channelRoom(name);
  if (!socket.rooms.has(room)) return;
  await socket.leave(room);
}
