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
 * `info` is the user's info, or `null` when they have none (from `identify`
 * or `updateInfo`): the connect and the room-join events carry it alike.
 * `version` is the decider's order of the change: of two events about one
 * user (or one user in one room), the higher version is the newer. Each node
 * sends them in that order and drops one older than what it sent, so the
 * last event about a user is the truth. It is left out by a store that does
 * not version its changes (cluster-query).
 */
export interface PresenceServerToClientEvents {
  "user has connected": (userId: string, info: UserInfo | null, version?: number) => void;
  "user has disconnected": (userId: string, version?: number) => void;
  "user has updated": (userId: string, info: UserInfo, version?: number) => void;
  /** To the room's members only. */
  "user has joined": (room: string, userId: string, info: UserInfo | null, version?: number) => void;
  /** To the room's members only. */
  "user has left": (room: string, userId: string, version?: number) => void;
}
