import type { UserInfo } from "@presence/core";

/**
 * The events a client receives from the binding, with the default names, for
 * typed servers and clients:
 *
 * ```ts
 * const io = new Server<ClientToServer, PresenceServerToClientEvents>(httpServer);
 * const socket: Socket<PresenceServerToClientEvents> = io("https://example.com");
 * ```
 *
 * `info` is present when the user has any (from `identify` or `updateInfo`):
 * the connect and the room-join events carry it alike.
 */
export interface PresenceServerToClientEvents {
  "user has connected": (userId: string, info?: UserInfo) => void;
  "user has disconnected": (userId: string) => void;
  "user has updated": (userId: string, info: UserInfo) => void;
  /** To the room's members only. */
  "user has joined": (room: string, userId: string, info?: UserInfo) => void;
  /** To the room's members only. */
  "user has left": (room: string, userId: string) => void;
}
