import {
  InvalidOptionError,
  PRESENCE_STORE_METHODS,
  assertImplements,
  assertKnownOptions,
  integerOption,
  type PresenceStore,
  type UserInfo,
} from "@presence/core";
import type { SyncScope } from "@presence/core/protocol";
import type { Socket } from "socket.io";
import { identityOf } from "./identity";
import type { RoomsOption } from "./room-names";
import { DEFAULT_SYNC_OPTIONS, type AuthorizeHook, type ClientUpdateHook, type ResolvedSyncOptions, type SyncOptions } from "./sync";

export { DEFAULT_SYNC_OPTIONS };

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
   * prefix (`"chat:"`: rooms known by their full name), a predicate,
   * `{ prefix }` (rooms `prefix...`, known to presence, its queries, events
   * and clients by the rest of the name, so that no name a client picks is a
   * raw Socket.IO room), or `false` for none. A socket's own private room and
   * the binding's internal rooms are never tracked.
   * @default false
   */
  rooms?: RoomsOption;
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
   * The most tracked rooms presence follows per connection: a room joined
   * beyond them is not tracked (the app's `socket.join` still works) and an
   * `error` (`LIMIT_EXCEEDED`) says so, so that no socket makes the store
   * hold unbounded rooms.
   * @default 64
   */
  maxRoomsPerConnection?: number;
  /**
   * Who may see what: called for every subscribe with its scope (all users,
   * a room, a user list, the count), and once per socket at connection with
   * `{ type: "all" }` for the per-user events (a socket receives them only
   * if it may follow every user; a room's join and leave events go to its
   * members). Returns a boolean, or a promise of one; a refusal is sent as
   * a typed error (`FORBIDDEN`). The default lets an identified socket
   * follow every user, the count and user lists, and a room only while it is
   * a member; an anonymous socket, nothing.
   * @default defaultAuthorize
   */
  authorize?: AuthorizeHook;
  /**
   * Whether a client may set its own user's info (`client.update(info)` in
   * `@presence/client`): a hook that returns the info to store (or `true`
   * to store it as sent), or `false` to refuse. Updates are rate limited
   * with the subscribes (`sync.requestBurst`, `sync.requestsPerSecond`).
   * @default false
   */
  clientUpdates?: ClientUpdateHook | false;
  /**
   * The sync protocol (`@presence/client`): subscribers get a scope's state,
   * then coalesced diffs once per tick, and per-socket bounds. `false`
   * answers no subscribe. See the README's "Clients that hold presence".
   * @default { tickMs: 250, maxTickMs: 1000, maxUserIds: 500, pageSize: 500, nodeHeartbeatMs: 2000, maxSubscriptions: 16, maxStateReads: 2, requestBurst: 20, requestsPerSecond: 2, maxBufferedBytes: 1048576 }
   */
  sync?: SyncOptions | false;
}

/**
 * The default `authorize`: an identified socket may follow every user, the
 * count and any user list, and a room only while it is a member; an
 * anonymous socket (with `allowAnonymous`) may follow nothing.
 */
export const defaultAuthorize: AuthorizeHook = (socket: Socket, scope: SyncScope) => authorizeByMembership(socket, scope, (room) => room);

/** `defaultAuthorize`, with a room's members found in the Socket.IO room `socketRoom(room)` (for `rooms: { prefix }`). */
export function authorizeByMembership(socket: Socket, scope: SyncScope, socketRoom: (room: string) => string): boolean {
  if (identityOf(socket) === undefined) return false;
  return scope.type !== "room" || socket.rooms.has(socketRoom(scope.room));
}

const OPTION_NAMES = [
  "store",
  "identify",
  "events",
  "rooms",
  "leaveDelayMs",
  "allowAnonymous",
  "unauthorizedMessage",
  "retries",
  "retryDelayMs",
  "maxRoomsPerConnection",
  "authorize",
  "clientUpdates",
  "sync",
] as const;

const SYNC_OPTION_NAMES = Object.keys(DEFAULT_SYNC_OPTIONS);

export interface ResolvedPresenceOptions {
  store: PresenceStore;
  identify: IdentifyHook;
  events: PresenceEventNames | false;
  rooms: RoomsOption;
  leaveDelayMs: number;
  allowAnonymous: boolean;
  unauthorizedMessage: string;
  retries: number;
  retryDelayMs: number;
  maxRoomsPerConnection: number;
  /** The app's hook; `undefined` for the default (which knows the room names). */
  authorize: AuthorizeHook | undefined;
  clientUpdates: ClientUpdateHook | false;
  sync: ResolvedSyncOptions | false;
}

/** Checks `createPresence`'s options once, merging the defaults: a typo or a bad value is an `InvalidOptionError` naming it. */
export function resolvePresenceOptions(options: PresenceOptions): ResolvedPresenceOptions {
  const owner = "createPresence";
  assertKnownOptions(owner, options, OPTION_NAMES);
  if (options === undefined) throw new InvalidOptionError(owner, "store", "is required");
  assertImplements(owner, "store", options.store, PRESENCE_STORE_METHODS, "a PresenceStore (MemoryStore, RedisStore, a cluster store, or your own)");
  const fn = <T>(name: string, value: T | undefined, fallback: T): T => {
    if (value === undefined) return fallback;
    if (typeof value !== "function" && value !== false) throw new InvalidOptionError(owner, name, "must be a function");
    return value;
  };
  if (typeof options.identify !== "function") throw new InvalidOptionError(owner, "identify", "must be a function (socket) => user id");
  const events = options.events;
  if (events !== undefined && events !== false) {
    assertKnownOptions(`${owner}: events`, events, Object.keys(DEFAULT_EVENT_NAMES));
    for (const [name, value] of Object.entries(events)) if (typeof value !== "string" || value.length === 0) throw new InvalidOptionError(owner, `events.${name}`, "must be an event name");
  }
  const rooms = options.rooms ?? false;
  const prefixed = typeof rooms === "object" && rooms !== null;
  if (prefixed) assertKnownOptions(`${owner}: rooms`, rooms, ["prefix"]);
  if (prefixed ? typeof rooms.prefix !== "string" || rooms.prefix.length === 0 : rooms !== false && typeof rooms !== "string" && typeof rooms !== "function") {
    throw new InvalidOptionError(owner, "rooms", "must be a prefix, a predicate, { prefix } or false");
  }
  const sync = options.sync;
  if (sync !== undefined && sync !== false) assertKnownOptions(`${owner}: sync`, sync, SYNC_OPTION_NAMES);
  const resolvedSync =
    sync === false
      ? false
      : (Object.fromEntries(
          Object.entries(DEFAULT_SYNC_OPTIONS).map(([name, fallback]) => [name, integerOption(owner, `sync.${name}`, sync?.[name as keyof SyncOptions], fallback, 1)]),
        ) as unknown as ResolvedSyncOptions);
  return {
    store: options.store,
    identify: options.identify,
    events: events === false ? false : { ...DEFAULT_EVENT_NAMES, ...events },
    rooms,
    leaveDelayMs: integerOption(owner, "leaveDelayMs", options.leaveDelayMs, DEFAULT_LEAVE_DELAY_MS),
    allowAnonymous: options.allowAnonymous ?? false,
    unauthorizedMessage: options.unauthorizedMessage ?? "unauthorized",
    retries: integerOption(owner, "retries", options.retries, 3, 1),
    retryDelayMs: integerOption(owner, "retryDelayMs", options.retryDelayMs, 100),
    maxRoomsPerConnection: integerOption(owner, "maxRoomsPerConnection", options.maxRoomsPerConnection, 64, 1),
    authorize: fn("authorize", options.authorize, undefined) || undefined,
    clientUpdates: fn("clientUpdates", options.clientUpdates, false as const),
    sync: resolvedSync,
  };
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
