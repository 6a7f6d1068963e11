import {
  PresenceError,
  isValidUserId,
  type PresenceStore,
  type Transition,
  type UserInfo,
} from "@presence/core";
import { randomBytes } from "node:crypto";
import createDebug from "debug";
import type { Namespace, Socket } from "socket.io";
import { SyncBatch } from "./sync-batch";
import { PeerNodes, reachesOtherNodes } from "./sync-nodes";
import { StateReads } from "./sync-state";
import {
  DIFF,
  RESYNC,
  SUBSCRIBE,
  UNSUBSCRIBE,
  scopeKey,
  type DiffFrame,
  type ResyncFrame,
  type SubscribeReply,
  type SyncErrorReason,
  type SyncScope,
} from "./sync-protocol";

const debug = createDebug("presence:socketio:sync");

/** The Socket.IO rooms subscribers join. They are internal: the binding never tracks them as presence rooms. */
export const SYNC_ROOM_PREFIX = "presence:sync:";
const ALL_ROOM = `${SYNC_ROOM_PREFIX}all`;
const COUNT_ROOM = `${SYNC_ROOM_PREFIX}count`;
/** Every room subscriber, for info updates. */
const ROOMS_ROOM = `${SYNC_ROOM_PREFIX}rooms`;
/** Every user-list subscriber, for resyncs. */
const USERS_ROOM = `${SYNC_ROOM_PREFIX}users`;
/** A server-side event between nodes: someone follows the count, so flushes read it. */
const COUNT_WANTED = "presence:sync:count-wanted";
/** How long a node keeps reading the count after hearing that someone follows it (re-announced at half of it). */
const COUNT_WANTED_MS = 10 * 60_000;
const roomRoom = (room: string) => `${SYNC_ROOM_PREFIX}room:${room}`;
const userRoom = (userId: string) => `${SYNC_ROOM_PREFIX}user:${userId}`;

export const isSyncRoom = (room: string): boolean => room.startsWith(SYNC_ROOM_PREFIX);

/** Decides whether a socket may follow a room it is not a member of. */
export type RoomSubscribeHook = (socket: Socket, room: string) => boolean | Promise<boolean>;

export interface SyncOptions {
  /**
   * How often, in ms, each node flushes the transitions it decided as
   * coalesced diffs to subscribers. Shorter ticks show changes sooner but
   * send more frames in a storm (bench 6: with 1,000 clients, 100 ms sent
   * 8.6 frames per client, 250 ms 6.3, with every view complete 0.3-0.4 s
   * after the last connect either way).
   * @default 250
   */
  tickMs?: number;
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
   * How often, in ms, each node tells the others it is alive. A node silent
   * for three of these is taken for dead (killed, cut off): the diffs it had
   * not flushed are lost, so every survivor tells its subscribers to resync.
   * @default 2000
   */
  nodeHeartbeatMs?: number;
  /**
   * Whether a socket may follow a room it is not a member of (members always may).
   * @default () => true
   */
  canSubscribeRoom?: RoomSubscribeHook;
}

const DEFAULT_SYNC_OPTIONS: Required<SyncOptions> = {
  tickMs: 250,
  maxUserIds: 500,
  pageSize: 500,
  nodeHeartbeatMs: 2000,
  canSubscribeRoom: () => true,
};

/** A subscribe that was refused: sent in the ack as `{ ok: false, error: { code, reason, message } }`. */
export class SyncScopeError extends PresenceError {
  readonly reason: SyncErrorReason;

  constructor(reason: SyncErrorReason, message: string) {
    super(reason === "unavailable" ? "STORE_UNAVAILABLE" : "INVALID_SCOPE", message);
    this.reason = reason;
  }
}

/** The names of the per-user events. */
export interface TransitionEventNames {
  connected: string;
  disconnected: string;
  updated: string;
  joined: string;
  left: string;
}

/** Sends the classic per-user event of one transition to the clients that get it. */
export function emitTransition(namespace: Namespace, names: TransitionEventNames, transition: Transition): void {
  switch (transition.type) {
    case "connected":
      if (transition.info === undefined) namespace.emit(names.connected, transition.userId);
      else namespace.emit(names.connected, transition.userId, transition.info);
      return;
    case "disconnected":
      namespace.emit(names.disconnected, transition.userId);
      return;
    case "updated":
      namespace.emit(names.updated, transition.userId, transition.info);
      return;
    case "joined":
      // to the room's members only
      if (transition.info === undefined) namespace.to(transition.room).emit(names.joined, transition.room, transition.userId);
      else namespace.to(transition.room).emit(names.joined, transition.room, transition.userId, transition.info);
      return;
    case "left":
      namespace.to(transition.room).emit(names.left, transition.room, transition.userId);
      return;
  }
}

export interface PresenceSyncContext {
  namespace: Namespace;
  store: PresenceStore;
  /** Whether the binding tracks this room. */
  tracks: (room: string) => boolean;
  onError: (error: unknown) => void;
}

/** What one socket follows, beyond the Socket.IO rooms it joined for it. */
interface Following {
  rooms: Set<string>;
  userIds: Set<string>;
}

/**
 * The sync protocol's server side for one namespace: answers subscribes
 * with the scope's state, and flushes what this node decided once per tick,
 * as coalesced diffs, to subscribers on every node through the adapter.
 */
export class PresenceSync {
  readonly options: Readonly<Required<SyncOptions>>;
  readonly #context: PresenceSyncContext;
  readonly #following = new WeakMap<Socket, Following>();
  readonly #states: StateReads;
  readonly #peers: PeerNodes;
  #batch = new SyncBatch();
  #timer: NodeJS.Timeout | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  /** The flush in progress: flushes run one after the other, so diffs leave in order. */
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;
  /** Until when a flush reads the count for count subscribers on other nodes. */
  #countWantedUntil = 0;
  #countAnnouncedAt = 0;
  /** This node's id in frames, and its frame numbers per key (see `DiffFrame.seq`). */
  readonly #node = randomBytes(6).toString("base64url");
  readonly #seqs = new Map<string, number>();

  constructor(context: PresenceSyncContext, options: SyncOptions = {}) {
    this.#context = context;
    this.options = { ...DEFAULT_SYNC_OPTIONS, ...options };
    this.#states = new StateReads(context.namespace, context.store, this.options.pageSize);
    this.#peers = new PeerNodes(context.namespace, this.#node, this.options.nodeHeartbeatMs, (node) => {
      debug("node %s went silent: its unflushed diffs are lost, subscribers here resync", node);
      this.resync({ local: true });
    });
    context.namespace.on("connection", (socket) => this.#listen(socket));
    context.namespace.on(COUNT_WANTED, () => (this.#countWantedUntil = Date.now() + COUNT_WANTED_MS));
  }

  /** Queues a transition this node decided (or its store announced) for the next flush. */
  queue(transition: Transition): void {
    this.#batch.add(transition, Date.now());
    if (this.#closed) return void this.flush();
    this.#timer ??= setTimeout(() => void this.flush(), this.options.tickMs);
  }

  /**
   * Tells subscribers to read their state again: after the store recovered,
   * when this node's adapter lost messages, or whenever a view may have
   * drifted. `local` reaches only this node's sockets.
   */
  resync(options: { key?: string; local?: boolean } = {}): void {
    const frame: ResyncFrame = options.key === undefined ? {} : { key: options.key };
    const to = this.#context.namespace.to([ALL_ROOM, COUNT_ROOM, ROOMS_ROOM, USERS_ROOM]);
    (options.local ? to.local : to).emit(RESYNC, frame);
  }

  /**
   * Asks every subscriber to resync at the end of this tick, once however
   * often it is called: for the binding when a store call failed for good
   * (the transition it would have decided may be lost).
   */
  resyncSoon(): void {
    if (this.#closed) return;
    this.#resyncTimer ??= setTimeout(() => {
      this.#resyncTimer = undefined;
      this.resync();
    }, this.options.tickMs);
  }

  /** Sends what is queued now; resolves once its diffs are sent. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#batch;
    if (batch.empty) return this.#flushing;
    this.#batch = new SyncBatch();
    this.#flushing = this.#flushing.then(() => this.#sendDiffs(batch)).catch((error) => this.#context.onError(error));
    return this.#flushing;
  }

  /** Flushes what is left and stops: later transitions are flushed at once. */
  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#resyncTimer);
    this.#peers.close();
    return this.flush();
  }

  async #sendDiffs(batch: SyncBatch): Promise<void> {
    const { namespace, store } = this.#context;
    // a room join does not carry the user's info: look it up once per user
    const missing = new Set<string>();
    for (const changes of batch.rooms.values()) for (const userId of changes.joinsWithoutInfo()) missing.add(userId);
    const infos = new Map<string, UserInfo | undefined>();
    if (missing.size > 0 && !this.#closed) {
      await Promise.all(
        [...missing].map(async (userId) => {
          infos.set(userId, await store.userInfo(userId).catch(() => undefined));
        }),
      );
    }
    const version = Date.now();
    const all = batch.all.frame("all", version);
    // one frame for the all-users scope and every user-list subscriber of a changed user
    if (all) namespace.to([ALL_ROOM, ...[...batch.all.userIds()].map(userRoom)]).emit(DIFF, this.#numbered(all));
    for (const [room, changes] of batch.rooms) {
      for (const userId of changes.joinsWithoutInfo()) changes.fillInfo(userId, infos.get(userId));
      const frame = changes.frame(`room:${room}`, version);
      if (frame) namespace.to(roomRoom(room)).emit(DIFF, this.#numbered(frame));
    }
    const updates = batch.roomUpdates.frame("rooms", version);
    if (updates) namespace.to(ROOMS_ROOM).emit(DIFF, this.#numbered(updates));
    if (batch.countChanged && !this.#closed && this.#countWanted()) {
      // an absolute count, newest read wins: every node's reads after its own changes converge on the truth
      const countVersion = Date.now();
      const count = await store.usersCount().catch(() => undefined);
      if (count !== undefined) namespace.to(COUNT_ROOM).emit(DIFF, { key: "count", version: countVersion, count } satisfies DiffFrame);
    }
  }

  /**
   * Whether a flush should read the count: reading it is a store call (a
   * query of every node with cluster-query), so only while someone follows it.
   */
  #countWanted(): boolean {
    if (this.#context.namespace.adapter.rooms.has(COUNT_ROOM)) {
      this.#announceCountWanted(false);
      return true;
    }
    return Date.now() < this.#countWantedUntil;
  }

  /** Tells the other nodes that this one has count subscribers (again at half the window). */
  #announceCountWanted(now: boolean): void {
    if (!reachesOtherNodes(this.#context.namespace)) return;
    if (!now && Date.now() - this.#countAnnouncedAt < COUNT_WANTED_MS / 2) return;
    this.#countAnnouncedAt = Date.now();
    try {
      this.#context.namespace.serverSideEmit(COUNT_WANTED);
    } catch {
      // the in-memory adapter has no other nodes to tell
    }
  }

  /** Stamps a frame with this node's id and its next number for the frame's key. */
  #numbered(frame: DiffFrame): DiffFrame {
    const seq = (this.#seqs.get(frame.key) ?? 0) + 1;
    this.#seqs.set(frame.key, seq);
    return { ...frame, node: this.#node, seq };
  }

  #listen(socket: Socket): void {
    socket.on(SUBSCRIBE, (request: unknown, ack: unknown) => {
      this.#subscribe(socket, request).then(
        (reply) => typeof ack === "function" && ack(reply),
        (error: unknown) => typeof ack === "function" && ack(refusal(error)),
      );
    });
    socket.on(UNSUBSCRIBE, (request: unknown, ack: unknown) => {
      this.#unsubscribe(socket, request).then(
        (reply) => typeof ack === "function" && ack(reply),
        (error: unknown) => typeof ack === "function" && ack(refusal(error)),
      );
    });
  }

  #followingOf(socket: Socket): Following {
    let following = this.#following.get(socket);
    if (!following) this.#following.set(socket, (following = { rooms: new Set(), userIds: new Set() }));
    return following;
  }

  async #subscribe(socket: Socket, request: unknown): Promise<SubscribeReply> {
    const { scope, number } = parseSubscribe(request);
    const following = this.#followingOf(socket);
    let userIds: string[] | undefined;
    switch (scope.type) {
      case "all":
        await socket.join(ALL_ROOM);
        break;
      case "count":
        await socket.join(COUNT_ROOM);
        this.#announceCountWanted(true);
        break;
      case "room": {
        const { room } = scope;
        if (!this.#context.tracks(room)) throw new SyncScopeError("rooms-disabled", `the room ${JSON.stringify(room)} is not tracked`);
        if (!socket.rooms.has(room) && !(await this.options.canSubscribeRoom(socket, room))) {
          throw new SyncScopeError("room-forbidden", `this socket may not follow the room ${JSON.stringify(room)}`);
        }
        following.rooms.add(room);
        await socket.join([roomRoom(room), ROOMS_ROOM]);
        break;
      }
      case "users": {
        userIds = [...new Set(scope.userIds)];
        if (userIds.length > this.options.maxUserIds) {
          throw new SyncScopeError("too-many-user-ids", `at most ${this.options.maxUserIds} user ids per subscription, not ${userIds.length}`);
        }
        // replaced whole, as Slack's presence_sub
        const next = new Set(userIds);
        for (const userId of following.userIds) if (!next.has(userId)) await socket.leave(userRoom(userId));
        following.userIds = next;
        await socket.join([USERS_ROOM, ...userIds.map(userRoom)]);
        break;
      }
    }
    // joined first, then read: a change decided after the read starts reaches the socket as a diff
    try {
      await this.#states.send(socket, scope, number, userIds);
    } catch (error) {
      debug("state read for %s failed: %O", scopeKey(scope), error);
      throw new SyncScopeError("unavailable", "the presence store did not answer: subscribe again later");
    }
    return { ok: true };
  }

  async #unsubscribe(socket: Socket, request: unknown): Promise<SubscribeReply> {
    const { scope } = parseSubscribe({ request: 0, ...(request as object) });
    const following = this.#followingOf(socket);
    switch (scope.type) {
      case "all":
        await socket.leave(ALL_ROOM);
        break;
      case "count":
        await socket.leave(COUNT_ROOM);
        break;
      case "room":
        following.rooms.delete(scope.room);
        await socket.leave(roomRoom(scope.room));
        if (following.rooms.size === 0) await socket.leave(ROOMS_ROOM);
        break;
      case "users":
        for (const userId of following.userIds) await socket.leave(userRoom(userId));
        following.userIds = new Set();
        await socket.leave(USERS_ROOM);
        break;
    }
    return { ok: true };
  }
}

function refusal(error: unknown): SubscribeReply {
  const refused =
    error instanceof SyncScopeError ? error : new SyncScopeError("unavailable", error instanceof Error ? error.message : String(error));
  return { ok: false, error: { code: refused.code, reason: refused.reason, message: refused.message } };
}

/** Checks a subscribe request from a client: anything else is refused as malformed. */
function parseSubscribe(request: unknown): { scope: SyncScope; number: number } {
  const malformed = (why: string) => new SyncScopeError("malformed", `malformed subscribe: ${why}`);
  if (typeof request !== "object" || request === null) throw malformed("expected { scope, request }");
  const { scope, request: number } = request as { scope?: unknown; request?: unknown };
  if (typeof number !== "number" || !Number.isSafeInteger(number)) throw malformed("`request` must be an integer");
  if (typeof scope !== "object" || scope === null) throw malformed("`scope` must be an object");
  const { type, room, userIds } = scope as { type?: unknown; room?: unknown; userIds?: unknown };
  switch (type) {
    case "all":
    case "count":
      return { scope: { type }, number };
    case "room":
      if (typeof room !== "string" || room.length === 0 || isSyncRoom(room)) throw malformed("`scope.room` must be a room name");
      return { scope: { type, room }, number };
    case "users":
      if (!Array.isArray(userIds) || !userIds.every((userId) => isValidUserId(userId))) {
        throw malformed("`scope.userIds` must be an array of user ids");
      }
      return { scope: { type, userIds: userIds as string[] }, number };
    default:
      throw malformed("`scope.type` must be all, room, users or count");
  }
}
