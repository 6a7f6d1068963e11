import { EventEmitter } from "node:events";
import {
  ConnectionConflictError,
  DEFAULT_MAX_USER_ID_BYTES,
  DEFAULT_MAX_USER_INFO_BYTES,
  InvalidRoomError,
  InvalidUserIdError,
  InvalidUserInfoError,
  PresenceError,
  StoreClosedError,
  assertUserId,
  parseUserInfo,
  serializeUserInfo,
  type PresenceStore,
  type Transition,
  type UserInfo,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";
import createDebug from "debug";
import type { Namespace, Server, Socket } from "socket.io";

const debug = createDebug("presence:socketio");

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
   * The largest accepted user info, in UTF-8 bytes of JSON.
   * @default 1024
   */
  maxUserInfoBytes?: number;
  /**
   * How long, in ms, a user whose last connection dropped stays online. A
   * reconnect inside the window, on any node, produces neither a leave nor a join.
   * @default 0
   */
  leaveDelayMs?: number;
  /**
   * The longest accepted user id, in UTF-8 bytes.
   * @default 256
   */
  maxUserIdBytes?: number;
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
}

export interface PresenceEvents {
  /** A user went offline -> online. */
  connected: [userId: string, info: UserInfo | undefined];
  /** A user went online -> offline. */
  disconnected: [userId: string];
  /** An online user's info changed. */
  updated: [userId: string, info: UserInfo];
  /** A user entered a tracked room (their first connection in it). */
  joined: [room: string, userId: string];
  /** A user left a tracked room (their last connection in it). */
  left: [room: string, userId: string];
  /** A store call failed for good, or the store reported a background error. */
  error: [error: Error];
}

/** Why a connection was refused; sent as `err.data.reason` with the `connect_error`. */
export type RefusalReason = "identify-failed" | "no-user-id" | "invalid-user-id" | "invalid-user-info";

const DEFAULT_EVENT_NAMES: PresenceEventNames = {
  connected: "user has connected",
  disconnected: "user has disconnected",
  updated: "user has updated",
  joined: "user has joined",
  left: "user has left",
};

/** Errors that retrying cannot fix: bad input and a closed store. */
const isPermanent = (error: unknown) =>
  error instanceof InvalidUserIdError ||
  error instanceof InvalidUserInfoError ||
  error instanceof InvalidRoomError ||
  error instanceof ConnectionConflictError ||
  error instanceof StoreClosedError;

type Identified = { userId: string; info: UserInfo | undefined };

/**
 * Presence for one Socket.IO namespace: identifies each socket's user, counts
 * its connections in the store, and emits transitions to every client.
 */
export class Presence extends EventEmitter<PresenceEvents> {
  readonly namespace: Namespace;
  readonly store: PresenceStore;

  readonly #identify: IdentifyHook;
  readonly #eventNames: PresenceEventNames | false;
  readonly #leaveDelayMs: number;
  readonly #maxUserIdBytes: number;
  readonly #maxUserInfoBytes: number;
  readonly #tracks: (room: string) => boolean;
  readonly #unauthorizedMessage: string;
  readonly #retries: number;
  readonly #retryDelayMs: number;

  readonly #identities = new WeakMap<Socket, Identified>();
  /** Sockets whose counting has started (their connect is queued). */
  readonly #counted = new WeakSet<Socket>();
  /** Sockets on their way out: the store's disconnect takes them out of their rooms. */
  readonly #disconnecting = new WeakSet<Socket>();
  /** The tail of each counted socket's queue of store calls: calls for one socket run in order. */
  readonly #queues = new Map<string, Promise<void>>();
  /** Disconnects waiting out the leave grace, by socket id. */
  readonly #pendingLeaves = new Map<string, { timer: NodeJS.Timeout; leave: () => void }>();
  readonly #unsubscribe: Array<() => void> = [];
  #closing: Promise<void> | undefined;

  constructor(namespace: Namespace, options: PresenceOptions) {
    super();
    if (!options?.store) throw new TypeError("createPresence: the `store` option is required");
    if (typeof options.identify !== "function") {
      throw new TypeError("createPresence: the `identify` option must be a function");
    }
    this.namespace = namespace;
    this.store = options.store;
    this.#identify = options.identify;
    this.#eventNames = options.events === false ? false : { ...DEFAULT_EVENT_NAMES, ...options.events };
    this.#leaveDelayMs = Math.max(0, options.leaveDelayMs ?? 0);
    this.#maxUserIdBytes = options.maxUserIdBytes ?? DEFAULT_MAX_USER_ID_BYTES;
    this.#maxUserInfoBytes = options.maxUserInfoBytes ?? DEFAULT_MAX_USER_INFO_BYTES;
    const rooms = options.rooms ?? false;
    this.#tracks = typeof rooms === "function" ? rooms : typeof rooms === "string" ? (room) => room.startsWith(rooms) : () => false;
    this.#unauthorizedMessage = options.unauthorizedMessage ?? "unauthorized";
    this.#retries = Math.max(1, options.retries ?? 3);
    this.#retryDelayMs = options.retryDelayMs ?? 100;

    this.#unsubscribe.push(
      this.store.onTransition((transition) => this.#announce(transition)),
      this.store.onError((error) => this.#fail(error)),
    );
    namespace.use((socket, next) => {
      this.#authenticate(socket).then(
        () => next(),
        (error: Error) => next(error),
      );
    });
    namespace.on("connection", (socket) => this.#count(socket));
    namespace.adapter.on("join-room", (room: string, id: string) => this.#onRoom("join", room, id));
    namespace.adapter.on("leave-room", (room: string, id: string) => this.#onRoom("leave", room, id));
  }

  /** The user id the `identify` hook gave this socket, once it connected. */
  userIdOf(socket: Socket): string | undefined {
    return this.#identities.get(socket)?.userId;
  }

  /** Replaces an online user's info and tells every client; `false` when the user is offline. */
  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    assertUserId(userId, this.#maxUserIdBytes);
    const copy = parseUserInfo(serializeUserInfo(info, this.#maxUserInfoBytes));
    const updated = await this.store.updateInfo(userId, copy);
    if (updated) this.#announce({ type: "updated", userId, info: copy });
    return updated;
  }

  userInfo(userId: string): Promise<UserInfo | undefined> {
    return this.store.userInfo(userId);
  }

  isUserInRoom(userId: string, room: string): Promise<boolean> {
    return this.store.isUserInRoom(userId, room);
  }

  roomUsersCount(room: string): Promise<number> {
    return this.store.roomUsersCount(room);
  }

  /** A tracked room's users in pages, with their info. */
  roomUsers(room: string, options?: UsersPageOptions): AsyncIterable<UserPresence[]> {
    return this.store.roomUsers(room, options);
  }

  async isUserConnected(userId: string): Promise<boolean> {
    assertUserId(userId, this.#maxUserIdBytes);
    return this.store.isUserConnected(userId);
  }

  usersCount(): Promise<number> {
    return this.store.usersCount();
  }

  usersList(): Promise<string[]> {
    return this.store.usersList();
  }

  /** Online users in pages, for long lists. */
  users(options?: UsersPageOptions): AsyncIterable<UserPresence[]> {
    return this.store.users(options);
  }

  /**
   * Stops counting, applies the leaves still waiting out their grace, removes
   * this server's connections from the store (closing it) and emits the
   * leaves this causes. Sockets stay open; close the server for that.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const { timer, leave } of this.#pendingLeaves.values()) {
      clearTimeout(timer);
      leave();
    }
    await Promise.allSettled(this.#queues.values());
    try {
      await this.store.close();
    } catch (error) {
      this.#fail(error);
    }
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
  }

  async #authenticate(socket: Socket): Promise<void> {
    if (this.#closing) return; // not counted, not refused: presence is shutting down
    let identity: Identity | null | undefined;
    try {
      identity = await this.#identify(socket);
    } catch (error) {
      debug("identify threw for socket %s: %O", socket.id, error);
      throw this.#refusal("identify-failed");
    }
    if (identity === undefined || identity === null) throw this.#refusal("no-user-id");
    const userId: unknown = typeof identity === "object" ? identity.id : identity;
    try {
      assertUserId(userId, this.#maxUserIdBytes);
    } catch (error) {
      debug("identify gave an invalid user id for socket %s: %s", socket.id, (error as Error).message);
      throw this.#refusal("invalid-user-id");
    }
    let info: UserInfo | undefined;
    if (typeof identity === "object" && identity.info !== undefined) {
      try {
        info = parseUserInfo(serializeUserInfo(identity.info, this.#maxUserInfoBytes));
      } catch (error) {
        debug("identify gave invalid info for socket %s: %s", socket.id, (error as Error).message);
        throw this.#refusal("invalid-user-info");
      }
    }
    this.#identities.set(socket, { userId, info });
  }

  #refusal(reason: RefusalReason): Error {
    return Object.assign(new Error(this.#unauthorizedMessage), { data: { reason } });
  }

  /** Starts counting a socket: on `connection`, or earlier when an app's own handler joins a room first. */
  #count(socket: Socket): void {
    const identity = this.#identities.get(socket);
    if (identity === undefined || this.#closing || this.#counted.has(socket)) return;
    this.#counted.add(socket);
    const { userId, info } = identity;
    const connectionId = socket.id;

    socket.once("disconnecting", () => this.#disconnecting.add(socket));
    // attached before any await: a socket that leaves while its connect is in
    // flight is still counted down, after the connect, in order
    socket.once("disconnect", () => {
      if (this.#leaveDelayMs === 0 || this.#closing) {
        this.#leave(connectionId, userId);
        return;
      }
      const leave = () => {
        this.#pendingLeaves.delete(connectionId);
        this.#leave(connectionId, userId);
      };
      const timer = setTimeout(leave, this.#leaveDelayMs);
      this.#pendingLeaves.set(connectionId, { timer, leave });
    });

    this.#enqueue(connectionId, async () => {
      if (await this.#call("connect", () => this.store.connect(connectionId, userId, info))) {
        this.#announce(info === undefined ? { type: "connected", userId } : { type: "connected", userId, info });
      }
    });
    // rooms joined before the connection (in a middleware) were not counted yet
    for (const room of socket.rooms) this.#onRoom("join", room, connectionId);
  }

  /** Follows the adapter's join-room / leave-room events for tracked rooms. */
  #onRoom(change: "join" | "leave", room: string, connectionId: string): void {
    if (room === connectionId || this.#closing || !this.#tracks(room)) return;
    const socket = this.namespace.sockets.get(connectionId);
    const userId = socket && this.#identities.get(socket)?.userId;
    if (!socket || userId === undefined) return;
    if (change === "leave" && this.#disconnecting.has(socket)) return; // the store's disconnect does it
    this.#count(socket);
    this.#enqueue(connectionId, async () => {
      const call = change === "join" ? () => this.store.join(connectionId, room) : () => this.store.leave(connectionId, room);
      if (await this.#call(change, call)) this.#announce({ type: change === "join" ? "joined" : "left", room, userId });
    });
  }

  #leave(connectionId: string, userId: string): void {
    this.#enqueue(
      connectionId,
      async () => {
        if (await this.#call("disconnect", () => this.store.disconnect(connectionId))) {
          this.#announce({ type: "disconnected", userId });
        }
      },
      true,
    );
  }

  #enqueue(connectionId: string, task: () => Promise<void>, last = false): void {
    const previous = this.#queues.get(connectionId) ?? Promise.resolve();
    const next = previous.then(task).catch((error) => this.#fail(error));
    this.#queues.set(connectionId, next);
    if (last) {
      void next.finally(() => {
        if (this.#queues.get(connectionId) === next) this.#queues.delete(connectionId);
      });
    }
  }

  /** Runs a store call, retrying what retrying can fix. */
  async #call<T>(name: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (isPermanent(error) || attempt >= this.#retries) throw error;
        debug("store %s failed (attempt %d of %d), retrying: %s", name, attempt, this.#retries, (error as Error).message);
        await new Promise((resolve) => setTimeout(resolve, this.#retryDelayMs * 2 ** (attempt - 1)));
      }
    }
  }

  #announce(transition: Transition): void {
    const names = this.#eventNames;
    debug("transition %o", transition);
    switch (transition.type) {
      case "connected": {
        const { userId, info } = transition;
        if (names) {
          if (info === undefined) this.namespace.emit(names.connected, userId);
          else this.namespace.emit(names.connected, userId, info);
        }
        return void this.emit("connected", userId, info);
      }
      case "disconnected":
        if (names) this.namespace.emit(names.disconnected, transition.userId);
        return void this.emit("disconnected", transition.userId);
      case "updated":
        if (names) this.namespace.emit(names.updated, transition.userId, transition.info);
        return void this.emit("updated", transition.userId, transition.info);
      case "joined":
      case "left": {
        const { type, room, userId } = transition;
        // to the room's members: the server-side events still fire for untracked listeners
        if (names) this.namespace.to(room).emit(names[type], room, userId);
        return void this.emit(type, room, userId);
      }
    }
  }

  #fail(error: unknown): void {
    const err = error instanceof Error ? error : new PresenceError("UNKNOWN", String(error));
    debug("error: %O", err);
    // an EventEmitter throws on an unheard "error": only emit it when someone listens
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }
}

/**
 * Presence for a Socket.IO server (its main namespace) or one namespace.
 *
 * ```ts
 * const presence = createPresence(io, { store: new MemoryStore(), identify: (socket) => verify(socket.handshake.auth.token) });
 * ```
 */
export function createPresence(target: Server | Namespace, options: PresenceOptions): Presence {
  const namespace = "of" in target ? target.of("/") : target;
  return new Presence(namespace, options);
}
