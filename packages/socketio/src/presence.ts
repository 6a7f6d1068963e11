import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import {
  PresenceError,
  RoomsDisabledError,
  resolveLimits,
  toPresenceError,
  assertUserId,
  parseUserInfo,
  serializeUserInfo,
  type PresenceLimits,
  type PresenceStore,
  type Transition,
  type UserInfo,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";
import createDebug from "debug";
import type { Namespace, Server, Socket } from "socket.io";
import type { LastDelivered } from "./delivery-order";
import { IDENTITY_KEY, identityOf, type Identified } from "./identity";
import {
  DEFAULT_SYNC_OPTIONS,
  authorizeByMembership,
  resolvePresenceOptions,
  type Identity,
  type IdentifyHook,
  type PresenceEvents,
  type PresenceOptions,
  type RefusalReason,
} from "./options";
import type { AuthorizeHook, ClientUpdateHook } from "./sync";
import { TransitionRelay } from "./relay";
import { RoomNames } from "./room-names";
import { PresenceSync, SyncScopeError } from "./sync";
import { EVENTS_ROOM, UserEvents } from "./user-events";

const debug = createDebug("presence:socketio");

/**
 * Presence for one Socket.IO namespace: identifies each socket's user, counts
 * its connections in the store, and emits transitions to every client.
 */
export class Presence extends EventEmitter<PresenceEvents> {
  readonly namespace: Namespace;
  readonly store: PresenceStore;
  /** The sync protocol's server side; `undefined` with `sync: false`. */
  readonly sync: PresenceSync | undefined;

  readonly #identify: IdentifyHook;
  readonly #authorize: AuthorizeHook;
  readonly #clientUpdates: ClientUpdateHook | false;
  readonly #userEvents: UserEvents | undefined;
  readonly #relay: TransitionRelay;
  readonly #leaveDelayMs: number;
  readonly #limits: PresenceLimits;
  readonly #allowAnonymous: boolean;
  readonly #roomsEnabled: boolean;
  readonly #rooms: RoomNames;
  readonly #unauthorizedMessage: string;
  readonly #retries: number;
  readonly #retryDelayMs: number;

  /** A store call failed for good: a transition may be lost until every view reads its state again. */
  #storeFailed = false;
  /** Error codes already warned about through `process.emitWarning`, when nobody listens to `error`. */
  readonly #warned = new Set<string>();
  /** Sockets whose counting has started (their connect is queued). */
  readonly #counted = new WeakSet<Socket>();
  /** The tracked rooms each socket is in, as far as presence follows them (at most `maxRoomsPerConnection`: an array is the smallest). */
  readonly #roomsOf = new WeakMap<Socket, string[]>();
  readonly #maxRoomsPerConnection: number;
  /** Sockets on their way out: the store's disconnect takes them out of their rooms. */
  readonly #disconnecting = new WeakSet<Socket>();
  /** The tail of each counted socket's queue of store calls: calls for one socket run in order. */
  readonly #queues = new Map<string, Promise<void>>();
  /** Disconnects waiting out the leave grace, by socket id, with the id the store knows the connection by. */
  readonly #pendingLeaves = new Map<string, { timer: NodeJS.Timeout; leave: () => void; connectionId: string }>();
  /** The id the store knows each counted socket by: its socket id, or its recovery id (see `#count`). */
  readonly #connectionIds = new WeakMap<Socket, string>();
  /** This server's suffix for the sockets recovered here from another node. */
  readonly #recoveryTag = randomBytes(6).toString("base64url");
  readonly #unsubscribe: Array<() => void> = [];
  #closing: Promise<void> | undefined;

  constructor(namespace: Namespace, options: PresenceOptions) {
    super();
    const resolved = resolvePresenceOptions(options);
    this.namespace = namespace;
    this.store = resolved.store;
    this.#identify = resolved.identify;
    this.#authorize = resolved.authorize ?? ((socket, scope) => authorizeByMembership(socket, scope, (room) => this.#rooms.socketRoom(room)));
    this.#clientUpdates = resolved.clientUpdates;
    this.#leaveDelayMs = resolved.leaveDelayMs;
    // the store owns the limits: the binding never accepts what its store would refuse
    this.#limits = resolveLimits(this.store.limits);
    this.#allowAnonymous = resolved.allowAnonymous;
    this.#rooms = new RoomNames(resolved.rooms);
    this.#roomsEnabled = this.#rooms.enabled;
    this.#unauthorizedMessage = resolved.unauthorizedMessage;
    this.#retries = resolved.retries;
    this.#retryDelayMs = resolved.retryDelayMs;
    this.#maxRoomsPerConnection = resolved.maxRoomsPerConnection;
    const sync = resolved.sync;
    const syncBounds = sync === false ? DEFAULT_SYNC_OPTIONS : sync;
    this.#relay = new TransitionRelay(
      namespace,
      {
        deliver: (transition, seq, previous) => this.#deliver(transition, seq, previous),
        lost: () => this.#lost(),
      },
      syncBounds.nodeHeartbeatMs,
    );
    const socketRoom = (room: string) => this.#rooms.socketRoom(room);
    this.#userEvents = resolved.events === false ? undefined : new UserEvents(namespace, resolved.events, this.#relay.order, socketRoom, syncBounds.maxBufferedBytes);
    this.sync =
      sync === false
        ? undefined
        : new PresenceSync(
            {
              namespace,
              store: this.store,
              limits: this.#limits,
              tracks: (room) => this.#rooms.tracks(room),
              authorize: (socket, scope) => this.#authorize(socket, scope),
              update: (socket, info) => this.#clientUpdate(socket, info),
              version: () => this.#relay.seen,
              onError: (error) => this.#fail(error),
            },
            sync,
          );
    // after the store's close: the leaves it announces leave in a last flush
    this.#unsubscribe.push(() => this.#relay.close(), () => this.#userEvents?.close());
    if (this.sync) this.#unsubscribe.push(() => void this.sync?.close());

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
    namespace.on("connection", (socket) => {
      // a socket allowed the per-user events hears its own user's connect too: it joins before it is counted
      const allowed = this.#userEvents ? this.#allowEvents(socket) : undefined;
      if (allowed === undefined) this.#count(socket);
      else void allowed.finally(() => this.#count(socket));
    });
    namespace.adapter.on("join-room", (room: string, id: string) => this.#onRoom("join", room, id));
    namespace.adapter.on("leave-room", (room: string, id: string) => this.#onRoom("leave", room, id));
  }

  /** The user id the `identify` hook gave this socket; `undefined` for an anonymous socket. */
  userIdOf(socket: Socket): string | undefined {
    return identityOf(socket)?.userId;
  }

  /** Replaces an online user's info and tells every client (the store announces it); `false` when the user is offline. */
  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    assertUserId(userId, this.#limits.maxUserIdBytes);
    const copy = parseUserInfo(serializeUserInfo(info, this.#limits.maxUserInfoBytes));
    return this.store.updateInfo(userId, copy);
  }

  userInfo(userId: string): Promise<UserInfo | undefined> {
    return this.store.userInfo(userId);
  }

  /** Rejects with `RoomsDisabledError` when the `rooms` option tracks none. */
  async isUserInRoom(userId: string, room: string): Promise<boolean> {
    this.#assertRooms();
    return this.store.isUserInRoom(userId, room);
  }

  /** Rejects with `RoomsDisabledError` when the `rooms` option tracks none. */
  async roomUsersCount(room: string): Promise<number> {
    this.#assertRooms();
    return this.store.roomUsersCount(room);
  }

  /** A tracked room's users in pages, with their info. Throws `RoomsDisabledError` when the `rooms` option tracks none. */
  roomUsers(room: string, options?: UsersPageOptions): AsyncIterable<UserPresence[]> {
    this.#assertRooms();
    return this.store.roomUsers(room, options);
  }

  async isUserConnected(userId: string): Promise<boolean> {
    assertUserId(userId, this.#limits.maxUserIdBytes);
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
   * Stops counting and closes the store, which removes this server's
   * connections (those still in their leave grace too) and announces the
   * leaves this causes. Sockets stay open; close the server for that.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // connections still in their leave grace are left to the store's close, which removes all of this
    // server's connections (keeping them through a grace of its own where it has one: @presence/cluster),
    // so that a user who closed a tab just before a deploy and is back elsewhere is not announced leaving
    for (const { timer } of this.#pendingLeaves.values()) clearTimeout(timer);
    this.#pendingLeaves.clear();
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
      // the app's own hook failed: the client only learns "unauthorized", so the server must hear of it
      this.#warn("IDENTIFY_FAILED", `the identify hook threw, so the connection was refused: ${toPresenceError(error).message}`);
      throw this.#refusal("identify-failed");
    }
    if (identity === undefined || identity === null) {
      if (this.#allowAnonymous) return; // connects, uncounted
      this.#warn("IDENTIFY_NO_USER", "the identify hook gave no user id, so the connection was refused (allowAnonymous: true lets such a socket connect uncounted)");
      throw this.#refusal("no-user-id");
    }
    const userId: unknown = typeof identity === "object" ? identity.id : identity;
    try {
      assertUserId(userId, this.#limits.maxUserIdBytes);
    } catch (error) {
      this.#warn("IDENTIFY_INVALID_USER", `the identify hook gave an invalid user id, so the connection was refused: ${(error as Error).message}`);
      throw this.#refusal("invalid-user-id");
    }
    let info: UserInfo | undefined;
    if (typeof identity === "object" && identity.info !== undefined) {
      try {
        info = parseUserInfo(serializeUserInfo(identity.info, this.#limits.maxUserInfoBytes));
      } catch (error) {
        debug("identify gave invalid info for socket %s: %s", socket.id, (error as Error).message);
        throw this.#refusal("invalid-user-info");
      }
    }
    if (typeof socket.data !== "object" || socket.data === null) socket.data = {};
    (socket.data as Record<string, unknown>)[IDENTITY_KEY] = { userId, info } satisfies Identified;
  }

  #refusal(reason: RefusalReason): Error {
    return Object.assign(new Error(this.#unauthorizedMessage), { data: { reason } });
  }

  /**
   * Starts counting a socket: on `connection`, or earlier when an app's own
   * handler joins a room first. A socket that Socket.IO's connection state
   * recovery brought back keeps its id: inside the leave grace it is still
   * counted, so nobody hears of the drop; after it, it is counted anew.
   * A socket recovered on another node than the one it left (a cluster, or
   * several hosts) is counted here under an id of this node's own, and the
   * node it left removes the old id when its grace ends: the user is online
   * under both ids for a moment, and nobody hears of the move.
   */
  #count(socket: Socket): void {
    const identity = identityOf(socket);
    if (identity === undefined || this.#closing || this.#counted.has(socket) || socket.disconnected) return;
    this.#counted.add(socket);
    const { userId, info } = identity;
    const pending = this.#pendingLeaves.get(socket.id);
    if (pending) {
      clearTimeout(pending.timer);
      this.#pendingLeaves.delete(socket.id);
    }
    const connectionId = pending?.connectionId ?? (socket.recovered ? `${socket.id}~${this.#recoveryTag}` : socket.id);
    this.#connectionIds.set(socket, connectionId);

    socket.once("disconnecting", () => this.#disconnecting.add(socket));
    // attached before any await: a socket that leaves while its connect is in
    // flight is still counted down, after the connect, in order
    socket.once("disconnect", () => {
      if (this.#closing) return; // close() removes this server's connections and announces the leaves itself
      if (this.#leaveDelayMs === 0) {
        this.#leave(connectionId, userId);
        return;
      }
      const leave = () => {
        this.#pendingLeaves.delete(socket.id);
        this.#leave(connectionId, userId);
      };
      const timer = setTimeout(leave, this.#leaveDelayMs);
      this.#pendingLeaves.set(socket.id, { timer, leave, connectionId });
    });

    // a recovered socket whose leave was still pending was never uncounted
    if (!pending) {
      this.#enqueue(connectionId, async () => {
        await this.#call("connect", () => this.store.connect(connectionId, userId, info));
      });
    }
    // rooms joined before the connection (in a middleware) were not counted yet
    for (const room of socket.rooms) this.#onRoom("join", room, socket.id);
  }

  /** Follows the adapter's join-room / leave-room events for tracked rooms. */
  #onRoom(change: "join" | "leave", socketRoom: string, socketId: string): void {
    const room = socketRoom === socketId || this.#closing ? undefined : this.#rooms.presenceRoom(socketRoom);
    if (room === undefined) return;
    const socket = this.namespace.sockets.get(socketId);
    const userId = socket && identityOf(socket)?.userId;
    if (!socket || userId === undefined) return;
    if (change === "leave" && this.#disconnecting.has(socket)) return; // the store's disconnect does it
    const tracked = this.#roomsOf.get(socket) ?? [];
    const at = tracked.indexOf(room);
    if (change === "join" && at < 0 && tracked.length >= this.#maxRoomsPerConnection) {
      // the app joined the room; presence does not follow it, so that no socket makes the store hold unbounded rooms
      this.#fail(new PresenceError("LIMIT_EXCEEDED", `socket ${socketId} is in ${tracked.length} tracked rooms already (maxRoomsPerConnection): ${JSON.stringify(room.slice(0, 64))} is not tracked`));
      return;
    }
    // copies of the exact size (a push grows an array to 17 slots)
    if (change === "join") {
      if (at < 0) this.#roomsOf.set(socket, [...tracked, room]);
    } else if (at >= 0) this.#roomsOf.set(socket, tracked.toSpliced(at, 1));
    else return;
    this.#count(socket);
    const connectionId = this.#connectionIds.get(socket);
    if (connectionId === undefined) return; // not counted (closing, or already gone): its disconnect does the rest
    this.#enqueue(connectionId, async () => {
      await this.#call(change, change === "join" ? () => this.store.join(connectionId, room) : () => this.store.leave(connectionId, room));
    });
  }

  #leave(connectionId: string, userId: string): void {
    this.#enqueue(
      connectionId,
      async () => {
        await this.#call("disconnect", () => this.store.disconnect(connectionId));
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
        const result = await call();
        if (this.#storeFailed) {
          // a transition may have been lost while the store failed: every view reads its state again
          this.#storeFailed = false;
          this.sync?.resyncSoon();
        }
        return result;
      } catch (error) {
        const retryable = toPresenceError(error).retryable;
        if (!retryable || attempt >= this.#retries) {
          if (retryable) this.#storeFailed = true;
          throw error;
        }
        debug("store %s failed (attempt %d of %d), retrying: %s", name, attempt, this.#retries, (error as Error).message);
        await new Promise((resolve) => setTimeout(resolve, this.#retryDelayMs * 2 ** (attempt - 1)));
      }
    }
  }

  /**
   * Who may receive the per-user events: the sockets `authorize` lets follow
   * every user. A synchronous answer joins at once; a promise is returned
   * for an asynchronous one.
   */
  #allowEvents(socket: Socket): Promise<void> | undefined {
    const join = (allowed: boolean) => {
      if (allowed && socket.connected) void socket.join(EVENTS_ROOM);
    };
    let answer: boolean | Promise<boolean>;
    try {
      answer = this.#authorize(socket, { type: "all" });
    } catch (error) {
      this.#fail(error);
      return undefined;
    }
    if (typeof answer === "boolean") return void join(answer);
    return Promise.resolve(answer).then(join, (error: unknown) => this.#fail(error));
  }

  /** A socket's user sets their own info (`client.update(info)`), as the `clientUpdates` hook allows. */
  async #clientUpdate(socket: Socket, info: unknown): Promise<void> {
    const userId = identityOf(socket)?.userId;
    if (userId === undefined || this.#clientUpdates === false) throw new SyncScopeError("forbidden", "this socket may not set its user's info");
    let copy: UserInfo;
    try {
      copy = parseUserInfo(serializeUserInfo(info as UserInfo, this.#limits.maxUserInfoBytes));
    } catch (error) {
      throw new SyncScopeError("malformed", `malformed update: ${(error as Error).message}`);
    }
    const allowed = await this.#clientUpdates(socket, copy);
    if (allowed === false) throw new SyncScopeError("forbidden", "the server refused this info");
    await this.#call("updateInfo", () => this.store.updateInfo(userId, allowed === true ? copy : allowed));
  }

  /** Transitions were lost on their way here: views read their state again, and the per-user events are corrected. */
  #lost(): void {
    this.sync?.resync();
    this.#userEvents?.reconcile(this.store).catch((error: unknown) => this.#fail(error));
  }

  /** A transition this node's store announced: every node hears it, this one first. */
  #announce(transition: Transition): void {
    debug("transition %o", transition);
    if (transition.type === "joined" && transition.info === undefined && !this.#closing) {
      // a store may announce a room join without the user's info: the join event carries it (versions keep the order)
      void this.store.userInfo(transition.userId).then(
        (info) => this.#publish(info === undefined ? transition : { ...transition, info }),
        () => this.#publish(transition),
      );
      return;
    }
    this.#publish(transition);
  }

  #publish(transition: Transition): void {
    this.#relay.publish(transition);
    this.#emitServerSide(transition);
  }

  /** A transition heard here (this node's or relayed), numbered `seq` in this node's delivery order: to this node's sockets. */
  #deliver(transition: Transition, seq: number, previous: LastDelivered | undefined): void {
    this.#userEvents?.send(transition, previous);
    // what reaches sockets is ordered by this node's delivery (delivery-order.ts); an unversioned store's, by arrival
    this.sync?.queue(transition.version === undefined ? transition : { ...transition, version: seq });
  }

  /** The server-side events, fired on the node whose store announced the transition: once across the deployment. */
  #emitServerSide(transition: Transition): void {
    switch (transition.type) {
      case "connected":
        return void this.emit("connected", transition.userId, transition.info);
      case "disconnected":
        return void this.emit("disconnected", transition.userId);
      case "updated":
        return void this.emit("updated", transition.userId, transition.info);
      case "joined":
        // the server-side events fire for untracked listeners too
        return void this.emit("joined", transition.room, transition.userId, transition.info);
      case "left":
        return void this.emit("left", transition.room, transition.userId);
    }
  }

  #assertRooms(): void {
    if (!this.#roomsEnabled) throw new RoomsDisabledError();
  }

  #fail(error: unknown): void {
    const err = error instanceof Error ? error : toPresenceError(error);
    debug("error: %O", err);
    // an EventEmitter throws on an unheard "error": emit it to listeners, else warn once per kind
    if (this.listenerCount("error") > 0) this.emit("error", err);
    else this.#warn(toPresenceError(err).code, `${err.message} (listen to presence.on("error") to handle these; this warning is shown once per kind)`);
  }

  /** Tells the operator once per kind through Node's standard warnings, so no failure goes unseen. */
  #warn(kind: string, message: string): void {
    debug("warning %s: %s", kind, message);
    if (this.#warned.has(kind)) return;
    this.#warned.add(kind);
    process.emitWarning(message, { type: "PresenceWarning", code: `PRESENCE_${kind}` });
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
