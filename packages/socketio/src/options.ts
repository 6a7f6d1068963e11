import type { PresenceStore, UserInfo } from "@presence/core";
import type { Socket } from "socket.io";
import type { SyncOptions } from "./sync";

/** Who a socket is: the user id alone, or with the info the user shows others. */
export type Identity = string | { id: string; info?: UserInfo };

/** Returns who a socket is, from something the server can trust. */
export type IdentifyHook = (socket: Socket) => Identity | null | undefined | Promise<Identity | null | undefined>;

export interface PresenceEventNames {
  /** Sent to every client with `(userId, info?)`. @default "user has connected" */
  connected: string;
  /** Sent to every client with `(userId)`. @default "user has disconnected" */
  disconnected: string;
  /** Sent to every client with `(userId, info)`. @default "user has updated" */
  updated: string;
  /** Sent to the room's members with `(room, userId)`. @default "user has joined" */
  joined: string;
  /** Sent to the room's members with `(room, userId)`. @default "user has left" */
  left: string;
}

export interface PresenceOptions {
  /** Where presence is kept: `MemoryStore`, `RedisStore`, the cluster-query store, or your own. */
  store: PresenceStore;
  /**
   * Returns the user id of a socket (or `{ id, info }` with what the user
   * shows others), sync or async: from a verified token, a session or a
   * cookie. Throwing, returning nothing or returning an invalid id or info
   * refuses the connection with a `connect_error`.
   */
  identify: IdentifyHook;
  /**
   * Names of the events sent to clients on a transition, or `false` to send
   * none (the server-side events still fire).
   * @default { connected: "user has connected", disconnected: "user has disconnected", updated: "user has updated", joined: "user has joined", left: "user has left" }
   */
  events?: Partial<PresenceEventNames> | false;
  /**
   * Which Socket.IO rooms get presence (who is in them, joins and leaves): a
   * prefix, a predicate, or `false` for none. A socket's own private room is
   * never tracked.
   * @default false
   */
  rooms?: string | ((room: string) => boolean) | false;
  /**
   * How long, in ms, a user whose last connection dropped stays online. A
   * reconnect inside the window (a page reload, a recovered connection, a
   * tab reopened), on any node, produces neither a leave nor a join. The
   * default covers a page reload on a slow page; 0 announces leaves at once.
   * @default 2000
   */
  leaveDelayMs?: number;
  /**
   * Let a socket that `identify` gives no user (returns `null` or
   * `undefined`) connect uncounted: a public page or a lobby watcher that
   * sees presence without being part of it. Off, such a socket is refused.
   * A hook that throws or returns an invalid id is always refused.
   * @default false
   */
  allowAnonymous?: boolean;
  /**
   * The `connect_error` message sent to a refused client.
   * @default "unauthorized"
   */
  unauthorizedMessage?: string;
  /**
   * Attempts per store call before giving up and emitting `error` (store
   * calls are idempotent, so retrying them is safe).
   * @default 3
   */
  retries?: number;
  /**
   * Delay before the first retry, in ms; doubled on each further attempt.
   * @default 100
   */
  retryDelayMs?: number;
  /**
   * The sync protocol (`@presence/client`): subscribers get a scope's state,
   * then coalesced diffs once per tick. `false` answers no subscribe. See
   * the README's "Clients that hold presence".
   * @default { tickMs: 250, maxUserIds: 500, pageSize: 500, canSubscribeRoom: () => true }
   */
  sync?: SyncOptions | false;
}

/** The default leave grace: long enough to hide a page reload from everyone else. */
export const DEFAULT_LEAVE_DELAY_MS = 2000;

export interface PresenceEvents {
  /** A user went offline -> online. */
  connected: [userId: string, info: UserInfo | undefined];
  /** A user went online -> offline. */
  disconnected: [userId: string];
  /** An online user's info changed. */
  updated: [userId: string, info: UserInfo];
  /** A user entered a tracked room (their first connection in it), with their info. */
  joined: [room: string, userId: string, info: UserInfo | undefined];
  /** A user left a tracked room (their last connection in it). */
  left: [room: string, userId: string];
  /** A store call failed for good, or the store reported a background error. */
  error: [error: Error];
}

/** Why a connection was refused; sent as `err.data.reason` with the `connect_error`. */
export type RefusalReason = "identify-failed" | "no-user-id" | "invalid-user-id" | "invalid-user-info";

export const DEFAULT_EVENT_NAMES: PresenceEventNames = {
  connected: "user has connected",
  disconnected: "user has disconnected",
  updated: "user has updated",
  joined: "user has joined",
  left: "user has left",
};
