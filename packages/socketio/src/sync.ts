import { PresenceError, isValidUserId, type PresenceErrorCode, type PresenceLimits, type PresenceStore, type Transition, type UserInfo } from "@presence/core";
import {
  PROTOCOL_VERSION,
  RESYNC,
  SUBSCRIBE,
  UNSUBSCRIBE,
  UPDATE,
  scopeKey,
  type PackedState,
  type ResyncFrame,
  type SubscribeReply,
  type SyncErrorReason,
  type SyncScope,
} from "@presence/core/protocol";
import createDebug from "debug";
import type { Namespace, Socket } from "socket.io";
import { SyncBatch } from "./sync-batch";
import { DEFAULT_SOCKET_BOUNDS, SocketGuard, type SocketBounds } from "./sync-guard";
import { StateReads } from "./sync-state";
import { TickFrames } from "./tick-frames";
import { Followers } from "./followers";

const debug = createDebug("presence:socketio:sync");

/** The Socket.IO rooms subscribers join. They are internal: the binding never tracks them as presence rooms. */
export const SYNC_ROOM_PREFIX = "presence:sync:";
const ALL_ROOM = `${SYNC_ROOM_PREFIX}all`;
const COUNT_ROOM = `${SYNC_ROOM_PREFIX}count`;
/** Every room subscriber, for resyncs. */
const ROOMS_ROOM = `${SYNC_ROOM_PREFIX}rooms`;
/** Every user-list subscriber, for resyncs. */
const USERS_ROOM = `${SYNC_ROOM_PREFIX}users`;
const roomRoom = (room: string) => `${SYNC_ROOM_PREFIX}room:${room}`;

export const isSyncRoom = (room: string): boolean => room.startsWith(SYNC_ROOM_PREFIX);

/**
 * Decides whether a socket may follow a scope (and, for `{ type: "all" }` at
 * connection, receive the per-user events). The default lets an identified
 * socket follow all users, the count and user lists, and a room only when it
 * is a member; an anonymous socket nothing.
 */
export type AuthorizeHook = (socket: Socket, scope: SyncScope) => boolean | Promise<boolean>;

/** Decides what a socket's user may set as their own info (`client.update(info)`): the info to store, or false to refuse. */
export type ClientUpdateHook = (socket: Socket, info: UserInfo) => UserInfo | boolean | Promise<UserInfo | boolean>;

export interface SyncOptions extends Partial<SocketBounds> {
  /**
   * How often, in ms, each node flushes the transitions it heard as
   * coalesced diffs to its subscribers. Shorter ticks show changes sooner
   * but send more frames in a storm.
   * @default 250
   */
  tickMs?: number;
  /**
   * The longest a tick may stretch to, in ms. A tick that carried more than
   * 64 changes makes the next one longer in proportion (128 changes: twice
   * `tickMs`), so that in a storm each subscriber gets fewer, larger
   * packets; a quiet tick brings it back to `tickMs`.
   * @default 1000
   */
  maxTickMs?: number;
  /**
   * The most user ids one user-list subscription may follow; a longer list is refused.
   * @default 500
   */
  maxUserIds?: number;
  /**
   * Users per state frame when a subscriber reads a scope's state.
   * @default 500
   */
  pageSize?: number;
  /**
   * How often, in ms, each node tells the others it is alive, with the
   * number of the last transition it relayed. A node silent for three of
   * these is taken for dead (killed, cut off): what it had not relayed is
   * lost, so every survivor tells its subscribers to resync.
   * @default 2000
   */
  nodeHeartbeatMs?: number;
}

export type ResolvedSyncOptions = Required<Omit<SyncOptions, keyof SocketBounds>> & SocketBounds;

export const DEFAULT_SYNC_OPTIONS: ResolvedSyncOptions = {
  tickMs: 250,
  maxTickMs: 1000,
  maxUserIds: 500,
  pageSize: 500,
  nodeHeartbeatMs: 2000,
  ...DEFAULT_SOCKET_BOUNDS,
};

/** Changes per tick past which the next tick stretches (see `maxTickMs`). */
export const BUSY_TICK_CHANGES = 64;

/** How long the tick after one that carried `changes` lasts. */
export const nextTickMs = (changes: number, { tickMs, maxTickMs }: Pick<ResolvedSyncOptions, "tickMs" | "maxTickMs">): number =>
  Math.min(Math.max(tickMs, maxTickMs), Math.max(tickMs, Math.round((tickMs * changes) / BUSY_TICK_CHANGES)));

const CODES: Partial<Record<SyncErrorReason, PresenceErrorCode>> = {
  unavailable: "STORE_UNAVAILABLE",
  forbidden: "FORBIDDEN",
  "rate-limited": "RATE_LIMITED",
  "too-many-subscriptions": "LIMIT_EXCEEDED",
  "too-many-user-ids": "LIMIT_EXCEEDED",
};

/** A request that was refused: sent in the ack as `{ ok: false, error: { code, reason, message } }`. */
export class SyncScopeError extends PresenceError {
  readonly reason: SyncErrorReason;

  constructor(reason: SyncErrorReason, message: string) {
    super(CODES[reason] ?? "INVALID_SCOPE", message);
    this.reason = reason;
  }
}

export interface PresenceSyncContext {
  namespace: Namespace;
  store: PresenceStore;
  limits: PresenceLimits;
  /** Whether the binding tracks this room. */
  tracks: (room: string) => boolean;
  authorize: AuthorizeHook;
  /** Sets the socket's user's own info (`UPDATE`); rejects with a `SyncScopeError` when refused. */
  update: (socket: Socket, info: unknown) => Promise<void>;
  /** The state's version for a read starting now (`TransitionRelay.seen`). */
  version: () => number | null;
  onError: (error: unknown) => void;
}

/**
 * The sync protocol's server side for one namespace. Every node hears every
 * transition (`TransitionRelay`) and serves its own sockets: it answers
 * their subscribes with the scope's state, then sends them coalesced diffs
 * once per tick, each change stamped with its number in the node's delivery
 * order (delivery-order.ts).
 */
export class PresenceSync {
  readonly options: Readonly<ResolvedSyncOptions>;
  readonly #context: PresenceSyncContext;
  /** The scope keys each socket follows (at most `maxSubscriptions`: an array is the smallest). Its user list is in `Followers`. */
  readonly #following = new WeakMap<Socket, readonly string[]>();
  readonly #followers = new Followers();
  readonly #states: StateReads;
  readonly #guard: SocketGuard;
  #batch = new SyncBatch();
  #tickMs: number;
  #timer: NodeJS.Timeout | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  /** The flush in progress: flushes run one after the other, so diffs leave in order. */
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(context: PresenceSyncContext, options: ResolvedSyncOptions) {
    this.#context = context;
    this.options = options;
    this.#tickMs = options.tickMs;
    this.#guard = new SocketGuard(options);
    this.#states = new StateReads(context.namespace, context.store, options.pageSize, context.version);
    context.namespace.on("connection", (socket) => this.#listen(socket));
  }

  /** A transition heard on this node (decided here or relayed): queued for the next flush. */
  queue(transition: Transition): void {
    this.#batch.add(transition);
    if (this.#closed) return void this.flush();
    this.#timer ??= setTimeout(() => void this.flush(), this.#tickMs);
  }

  /** How long the coming tick lasts, in ms: `tickMs`, stretched after a busy tick up to `maxTickMs`. */
  get tickMs(): number {
    return this.#tickMs;
  }

  /**
   * Tells subscribers to read their state again: this node's (a transition
   * was lost on its way here), or, with `everywhere`, every node's (a store
   * call failed for good, so a transition may never have been announced).
   */
  resync(options: { everywhere?: boolean } = {}): void {
    const frame: ResyncFrame = {};
    const to = this.#context.namespace.to([ALL_ROOM, COUNT_ROOM, ROOMS_ROOM, USERS_ROOM]);
    (options.everywhere ? to : to.local).emit(RESYNC, frame);
  }

  /** Asks every subscriber everywhere to resync at the end of this tick, once however often it is called. */
  resyncSoon(): void {
    if (this.#closed) return;
    this.#resyncTimer ??= setTimeout(() => {
      this.#resyncTimer = undefined;
      this.resync({ everywhere: true });
    }, this.options.tickMs);
  }

  /** Sends what is queued now; resolves once its diffs are sent. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#batch;
    this.#tickMs = nextTickMs(batch.changes, this.options);
    if (batch.empty) return this.#flushing;
    this.#batch = new SyncBatch();
    this.#flushing = this.#flushing.then(() => this.#sendDiffs(batch)).catch((error) => this.#context.onError(error));
    return this.#flushing;
  }

  /** Flushes what is left and stops: later transitions are flushed at once. */
  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#resyncTimer);
    return this.flush();
  }

  async #sendDiffs(batch: SyncBatch): Promise<void> {
    const { namespace, store } = this.#context;
    const rooms = namespace.adapter.rooms;
    const subscribed = (room: string) => (rooms.get(room)?.size ?? 0) > 0;
    // the count is read beside the lookups below, as of at least the version delivered before the read starts
    const counting =
      batch.countChanged && !this.#closed && subscribed(COUNT_ROOM)
        ? { version: this.#context.version(), count: store.usersCount().catch(() => undefined) }
        : undefined;
    // a store may announce a room join without the user's info: look it up once per user
    const missing = new Set<string>();
    for (const [room, changes] of batch.rooms) if (subscribed(roomRoom(room))) for (const userId of changes.joinsWithoutInfo()) missing.add(userId);
    const infos = new Map<string, UserInfo | undefined>();
    if (missing.size > 0 && !this.#closed) {
      await Promise.all([...missing].map(async (userId) => void infos.set(userId, await store.userInfo(userId).catch(() => undefined))));
    }
    const frames = new TickFrames(namespace);
    if (subscribed(ALL_ROOM)) {
      const all = batch.all.frame("all");
      if (all) frames.toRoom(ALL_ROOM, all);
    }
    // a user-list subscriber gets the changes of the users it follows, in one frame
    const followed = new Map<Socket, string[]>();
    for (const userId of batch.all.userIds()) {
      for (const socket of this.#followers.of(userId)) {
        const userIds = followed.get(socket);
        if (userIds) userIds.push(userId);
        else followed.set(socket, [userId]);
      }
    }
    for (const [socket, userIds] of followed) {
      const frame = batch.all.frame("users", userIds);
      if (frame) frames.toSocket(socket, frame);
    }
    for (const [room, changes] of batch.rooms) {
      if (!subscribed(roomRoom(room))) continue;
      for (const userId of changes.joinsWithoutInfo()) changes.fillInfo(userId, infos.get(userId));
      const frame = changes.frame(`room:${room}`);
      if (frame) frames.toRoom(roomRoom(room), frame);
    }
    if (batch.roomUpdates.size > 0 && subscribed(ROOMS_ROOM)) {
      // an update reaches each followed room's subscribers; a client ignores one for a user not in its room
      for (const room of rooms.keys()) {
        if (!room.startsWith(`${SYNC_ROOM_PREFIX}room:`)) continue;
        const frame = batch.roomUpdates.frame(room.slice(SYNC_ROOM_PREFIX.length));
        if (frame) frames.toRoom(room, frame);
      }
    }
    if (counting) {
      const count = await counting.count;
      if (count !== undefined) frames.toRoom(COUNT_ROOM, { key: "count", version: counting.version, count });
    }
    // the subscribers whose output backs up are disconnected: no slow reader makes the server hold unbounded frames
    for (const socket of frames.send()) if (this.#guard.dropIfSlow(socket)) debug("socket %s reads too slowly: disconnected", socket.id);
  }

  /**
   * The request handlers, made once and shared by every socket (an EventEmitter calls a listener with the
   * socket as `this`): closures per socket would cost each connection six functions and their scopes.
   */
  readonly #handlers = (() => {
    const handle = (run: (socket: Socket, request: unknown) => Promise<SubscribeReply | SubscribeReply[]>) => {
      const sync = this;
      return function (this: Socket, request: unknown, ack: unknown) {
        const socket = this;
        const reply = (answer: SubscribeReply | SubscribeReply[]) => typeof ack === "function" && ack(answer);
        // a socket that sends without reading what it is sent backs up its own output: dropped, not buffered for
        if (sync.#guard.dropIfSlow(socket)) return void debug("socket %s reads too slowly: disconnected", socket.id);
        // a batch costs one request per subscribe in it
        if (!sync.#guard.admit(socket, batchLength(request) ?? 1)) return reply(refusal(new SyncScopeError("rate-limited", "too many presence requests: slow down")));
        sync.#guard.inOrder(socket, () => run(socket, request)).then(reply, (error: unknown) => reply(refusal(error)));
      };
    };
    return [
      [SUBSCRIBE, handle((socket, request) => (batchLength(request) === undefined ? this.#subscribe(socket, request) : this.#subscribeAll(socket, request)))],
      [UNSUBSCRIBE, handle((socket, request) => this.#unsubscribe(socket, request))],
      [
        UPDATE,
        handle(async (socket, request) => {
          const { info } = parseRequest(request, "update") as { info: unknown };
          await this.#context.update(socket, info);
          return { ok: true };
        }),
      ],
    ] as const;
  })();

  #listen(socket: Socket): void {
    for (const [event, handler] of this.#handlers) socket.on(event, handler);
  }

  async #subscribe(socket: Socket, request: unknown): Promise<SubscribeReply> {
    const { scope, number } = this.#parse(request);
    const key = scopeKey(scope);
    if (scope.type === "room" && !this.#context.tracks(scope.room)) {
      throw new SyncScopeError("rooms-disabled", `the room ${JSON.stringify(scope.room)} is not tracked`);
    }
    if (!(await this.#context.authorize(socket, scope))) throw new SyncScopeError("forbidden", `this socket may not follow ${key}`);
    const following = this.#following.get(socket) ?? [];
    if (!following.includes(key) && following.length >= this.options.maxSubscriptions) {
      throw new SyncScopeError("too-many-subscriptions", `at most ${this.options.maxSubscriptions} subscriptions per socket`);
    }
    if (socket.disconnected) return { ok: true };
    let userIds: string[] | undefined;
    switch (scope.type) {
      case "all":
        socket.join(ALL_ROOM);
        break;
      case "count":
        socket.join(COUNT_ROOM);
        break;
      case "room":
        socket.join([roomRoom(scope.room), ROOMS_ROOM]);
        break;
      case "users": {
        // replaced whole, as Slack's presence_sub: one user list per socket
        userIds = [...new Set(scope.userIds)];
        this.#followers.set(socket, userIds);
        socket.join(USERS_ROOM);
        break;
      }
    }
    if (!following.includes(key)) this.#following.set(socket, [...following, key]); // of the exact size: a push grows it to 17 slots
    // joined first, then read: a change decided after the read starts reaches the socket as a diff
    const read = this.#guard.read(socket, () => this.#states.send(socket, scope, number, userIds));
    if (!read) throw new SyncScopeError("rate-limited", `at most ${this.options.maxStateReads} state reads in flight per socket`);
    let state: PackedState | undefined;
    try {
      state = await read;
    } catch (error) {
      debug("state read for %s failed: %O", key, error);
      throw new SyncScopeError("unavailable", "the presence store did not answer: subscribe again later");
    }
    return state ? { ok: true, state } : { ok: true };
  }

  /**
   * The subscribes of one batch (protocol 6), one after the other as if sent
   * apart, answered together: one reply each, in order (each refused alone,
   * past `maxSubscriptions` too). Its length is bounded by the socket's
   * rate: a batch costs a request per subscribe. An empty one is refused.
   */
  async #subscribeAll(socket: Socket, request: unknown): Promise<SubscribeReply[]> {
    const { batch } = parseRequest(request, "subscribe") as { batch: unknown[] };
    if (batch.length === 0) throw new SyncScopeError("malformed", "malformed subscribe: `batch` is empty");
    const replies: SubscribeReply[] = [];
    for (const entry of batch) {
      const single = typeof entry === "object" && entry !== null ? { ...entry, v: PROTOCOL_VERSION } : entry;
      replies.push(await this.#subscribe(socket, single).catch(refusal));
    }
    return replies;
  }

  async #unsubscribe(socket: Socket, request: unknown): Promise<SubscribeReply> {
    const { scope } = this.#parse(request);
    const key = scopeKey(scope);
    const following = (this.#following.get(socket) ?? []).filter((followed) => followed !== key);
    this.#following.set(socket, following);
    switch (scope.type) {
      case "all":
        socket.leave(ALL_ROOM);
        break;
      case "count":
        socket.leave(COUNT_ROOM);
        break;
      case "room":
        socket.leave(roomRoom(scope.room));
        if (!following.some((followed) => followed.startsWith("room:"))) socket.leave(ROOMS_ROOM);
        break;
      case "users":
        this.#followers.set(socket, []);
        socket.leave(USERS_ROOM);
        break;
    }
    return { ok: true };
  }

  /** Checks a subscribe or unsubscribe against the protocol and the store's own limits. */
  #parse(request: unknown): { scope: SyncScope; number: number } {
    const { scope, request: number } = parseRequest(request, "subscribe") as { scope?: unknown; request?: unknown };
    const malformed = (why: string) => new SyncScopeError("malformed", `malformed subscribe: ${why}`);
    if (typeof number !== "number" || !Number.isSafeInteger(number)) throw malformed("`request` must be an integer");
    if (typeof scope !== "object" || scope === null) throw malformed("`scope` must be an object");
    const { type, room, userIds } = scope as { type?: unknown; room?: unknown; userIds?: unknown };
    const { maxRoomBytes, maxUserIdBytes } = this.#context.limits;
    switch (type) {
      case "all":
      case "count":
        return { scope: { type }, number };
      case "room":
        if (typeof room !== "string" || room.length === 0 || isSyncRoom(room) || Buffer.byteLength(room) > maxRoomBytes) {
          throw malformed(`\`scope.room\` must be a room name of 1 to ${maxRoomBytes} bytes`);
        }
        return { scope: { type, room }, number };
      case "users":
        if (!Array.isArray(userIds)) throw malformed("`scope.userIds` must be an array of user ids");
        if (userIds.length > this.options.maxUserIds) {
          throw new SyncScopeError("too-many-user-ids", `at most ${this.options.maxUserIds} user ids per subscription, not ${userIds.length}`);
        }
        if (!userIds.every((userId) => isValidUserId(userId, maxUserIdBytes))) {
          throw malformed(`\`scope.userIds\` must be user ids of 1 to ${maxUserIdBytes} bytes`);
        }
        return { scope: { type, userIds: userIds as string[] }, number };
      default:
        throw malformed("`scope.type` must be all, room, users or count");
    }
  }
}

/** The number of subscribes in a batch (protocol 6); undefined for a single request (or anything else). */
function batchLength(request: unknown): number | undefined {
  const batch = typeof request === "object" && request !== null ? (request as { batch?: unknown }).batch : undefined;
  return Array.isArray(batch) ? Math.max(1, batch.length) : undefined;
}

/** Checks the envelope every request shares: an object of this protocol's version. */
function parseRequest(request: unknown, what: string): Record<string, unknown> {
  if (typeof request !== "object" || request === null) throw new SyncScopeError("malformed", `malformed ${what}: expected an object`);
  const { v } = request as { v?: unknown };
  if (v !== PROTOCOL_VERSION) {
    throw new SyncScopeError("protocol-version", `this server speaks presence protocol ${PROTOCOL_VERSION}, not ${String(v)}: upgrade @presence/client`);
  }
  return request as Record<string, unknown>;
}

function refusal(error: unknown): SubscribeReply {
  const refused =
    error instanceof SyncScopeError ? error : new SyncScopeError("unavailable", error instanceof Error ? error.message : String(error));
  return { ok: false, error: { code: refused.code, reason: refused.reason, message: refused.message } };
}
