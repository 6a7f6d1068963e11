import { randomUUID } from "node:crypto";
import {
  ConnectionConflictError,
  ConnectionCounter,
  StoreClosedError,
  StoreEvents,
  StoreUnavailableError,
  assertConnectionId,
  assertRoom,
  assertUserId,
  parseUserInfo,
  serializeUserInfo,
  type ErrorListener,
  type PresenceStore,
  type Transition,
  type TransitionListener,
  type UserInfo,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";
import createDebug from "debug";
import type { Cluster, Redis } from "ioredis";
import { assertIoredisClient, duplicateClient, withTimeout } from "./client";
import { resolveOptions, type RedisStoreOptions } from "./options";
import { membershipField, presenceKeys, roomOfMembership, type PresenceKeys } from "./keys";
import { defineCommands, type PresenceCommands } from "./scripts";

const debug = createDebug("presence:redis");

/** One operation of apply.lua; `info` is JSON ("" for none). */
type Op =
  | { op: "c"; connectionId: string; userId: string; info: string }
  | { op: "d"; connectionId: string; userId: string }
  | { op: "j" | "l"; connectionId: string; userId: string; room: string }
  | { op: "u"; userId: string; info: string };

type Operation = Op & {
  resolve: (transition: boolean) => void;
  reject: (error: Error) => void;
  /** When it was queued: an operation held longer than the command timeout fails. */
  queuedAt: number;
};

/** An operation whose outcome was lost with its reply: settled by the next recovery. */
type InDoubt = Op & { processId: string; reported: boolean };

const isFenced = (error: unknown) => error instanceof Error && error.message.startsWith("FENCED");

const unavailable = (error: unknown) =>
  error instanceof StoreUnavailableError
    ? error
    : new StoreUnavailableError(`Redis did not answer: ${(error as Error)?.message ?? error}`, { cause: error });

/** The transition an operation made, when apply.lua answered 1. */
function transitionOf(op: Op): Transition {
  switch (op.op) {
    case "c":
      return op.info === "" ? { type: "connected", userId: op.userId } : { type: "connected", userId: op.userId, info: parseUserInfo(op.info) };
    case "d":
      return { type: "disconnected", userId: op.userId };
    case "j":
      return { type: "joined", room: op.room, userId: op.userId };
    case "l":
      return { type: "left", room: op.room, userId: op.userId };
    case "u":
      return { type: "updated", userId: op.userId, info: parseUserInfo(op.info) };
  }
}

const keyOf = (t: Transition) => `${t.type}:${"room" in t ? `${t.room.length}:${t.room}` : ""}${t.userId}`;

/**
 * Exact all-users presence on Redis, for every process of every host that
 * shares one Redis (or Redis Cluster), with rooms and user info.
 *
 * Each process keeps the truth of its own open connections in memory and
 * projects it onto Redis with idempotent Lua scripts. A process holds a lease
 * it renews on every heartbeat; when it dies the others clean its connections
 * up in bounded chunks and announce the users this leaves offline (and the
 * rooms they leave), once. A process that finds it was declared dead (paused
 * past its lease, cut off, or Redis restarted empty) takes a new identity and
 * publishes its connections again: presence converges to the connections
 * that are really open.
 */
export class RedisStore implements PresenceStore {
  readonly keys: PresenceKeys;
  /** This store's identity as a cleaner: stable across its process ids. */
  readonly id = randomUUID();

  readonly #redis: (Redis | Cluster) & PresenceCommands;
  readonly #events = new StoreEvents();
  /** The truth of this process: its open connections, their rooms, and its users' info (JSON). */
  readonly #local = new ConnectionCounter();
  readonly #rooms = new Map<string, Set<string>>();
  readonly #info = new Map<string, string>();
  readonly #heartbeatMs: number;
  readonly #leaseTimeoutMs: number;
  readonly #cleanupChunkSize: number;
  readonly #maxBatchSize: number;
  readonly #commandTimeoutMs: number;
  readonly #maxUserIdBytes: number;
  readonly #maxRoomBytes: number;
  readonly #maxUserInfoBytes: number;

  /** The current process id (one per epoch); undefined until registered. */
  #processId: string | undefined;
  /** Earlier process ids of this store whose data may still be in Redis. */
  readonly #retired = new Set<string>();
  readonly #queue: Operation[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  #inDoubt: InDoubt[] = [];
  /**
   * Users whose join this store reported (as a call's answer or an
   * announcement) and who still hold connections here: what settles a lost
   * reply without reporting a join twice.
   */
  readonly #reported = new Set<string>();
  #flushScheduled = false;
  /** Expires held operations while a recovery (or the first registration) holds the queue. */
  #holdTimer: NodeJS.Timeout | undefined;
  #recovery: Promise<void> | undefined;
  #needsRecovery = true;
  #cleaning = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: RedisStoreOptions) {
    assertIoredisClient(options?.redis);
    const resolved = resolveOptions(options);
    this.keys = presenceKeys(resolved.prefix);
    this.#heartbeatMs = resolved.heartbeatMs;
    this.#leaseTimeoutMs = resolved.leaseTimeoutMs;
    this.#cleanupChunkSize = resolved.cleanupChunkSize;
    this.#maxBatchSize = resolved.maxBatchSize;
    this.#commandTimeoutMs = resolved.commandTimeoutMs;
    this.#maxUserIdBytes = resolved.maxUserIdBytes;
    this.#maxRoomBytes = resolved.maxRoomBytes;
    this.#maxUserInfoBytes = resolved.maxUserInfoBytes;
    const client = duplicateClient(resolved.redis, this.#commandTimeoutMs, `presence:${this.id}`);
    client.on("error", (error: Error) => debug("redis connection error: %s", error.message));
    this.#redis = defineCommands(client);

    this.#heartbeat = setInterval(() => void this.#tick(), this.#heartbeatMs).unref();
    void this.#recoverSafely();
  }

  /** The process id this store currently writes under (changes after a fence). */
  get processId(): string | undefined {
    return this.#processId;
  }

  async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    this.#assertOpen();
    assertConnectionId(connectionId);
    assertUserId(userId, this.#maxUserIdBytes);
    const json = info === undefined ? "" : serializeUserInfo(info, this.#maxUserInfoBytes);
    const owner = this.#local.userOf(connectionId);
    if (owner !== undefined) {
      if (owner !== userId) throw new ConnectionConflictError(connectionId, userId, owner);
      return false; // a repeat: nothing to send
    }
    this.#local.connect(connectionId, userId);
    if (json !== "") this.#info.set(userId, json);
    return this.#enqueue({ op: "c", connectionId, userId, info: json });
  }

  async disconnect(connectionId: string): Promise<boolean> {
    this.#assertOpen();
    const userId = this.#local.userOf(connectionId);
    if (userId === undefined) return false;
    // the rooms a disconnect leaves implicitly are announced, not answered
    for (const room of this.#rooms.get(connectionId) ?? []) {
      this.#enqueue({ op: "l", connectionId, userId, room }).then(
        (left) => left && this.#announce({ type: "left", room, userId }),
        () => {}, // settled by the recovery
      );
    }
    this.#rooms.delete(connectionId);
    if (this.#local.disconnect(connectionId) !== undefined) {
      this.#reported.delete(userId);
      this.#info.delete(userId);
    }
    return this.#enqueue({ op: "d", connectionId, userId });
  }

  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    this.#assertOpen();
    assertUserId(userId, this.#maxUserIdBytes);
    const json = serializeUserInfo(info, this.#maxUserInfoBytes);
    if (this.#local.isOnline(userId)) this.#info.set(userId, json);
    return this.#enqueue({ op: "u", userId, info: json });
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    this.#assertOpen();
    const json = await this.#read(() => this.#redis.hget(this.keys.info, userId));
    return json === null ? undefined : parseUserInfo(json);
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    this.#assertOpen();
    assertRoom(room, this.#maxRoomBytes);
    const userId = this.#local.userOf(connectionId);
    if (userId === undefined) return false;
    let rooms = this.#rooms.get(connectionId);
    if (rooms?.has(room)) return false; // a repeat
    if (!rooms) this.#rooms.set(connectionId, (rooms = new Set()));
    rooms.add(room);
    return this.#enqueue({ op: "j", connectionId, userId, room });
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    this.#assertOpen();
    assertRoom(room, this.#maxRoomBytes);
    const userId = this.#local.userOf(connectionId);
    const rooms = this.#rooms.get(connectionId);
    if (userId === undefined || !rooms?.delete(room)) return false;
    if (rooms.size === 0) this.#rooms.delete(connectionId);
    return this.#enqueue({ op: "l", connectionId, userId, room });
  }

  async isUserConnected(userId: string): Promise<boolean> {
    this.#assertOpen();
    assertUserId(userId, this.#maxUserIdBytes);
    return (await this.#read(() => this.#redis.hexists(this.keys.users, userId))) === 1;
  }

  async usersCount(): Promise<number> {
    this.#assertOpen();
    return this.#read(() => this.#redis.hlen(this.keys.users));
  }

  async usersList(): Promise<string[]> {
    const users: string[] = [];
    for await (const page of this.users({ pageSize: 1000 })) for (const { userId } of page) users.push(userId);
    return users;
  }

  /** Online users in pages, streamed with HSCAN: never one giant reply. */
  users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.#assertOpen();
    return this.#scan(this.keys.users, options.pageSize);
  }

  async isUserInRoom(userId: string, room: string): Promise<boolean> {
    this.#assertOpen();
    return (await this.#read(() => this.#redis.hexists(this.keys.room(room), userId))) === 1;
  }

  async roomUsersCount(room: string): Promise<number> {
    this.#assertOpen();
    return this.#read(() => this.#redis.hlen(this.keys.room(room)));
  }

  /** A room's users in pages, streamed with HSCAN of that room's hash alone. */
  roomUsers(room: string, options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.#assertOpen();
    return this.#scan(this.keys.room(room), options.pageSize);
  }

  onTransition(listener: TransitionListener): () => void {
    return this.#events.onTransition(listener);
  }

  onError(listener: ErrorListener): () => void {
    return this.#events.onError(listener);
  }

  /**
   * Says goodbye: sends what is queued, removes this process's connections
   * at once (announcing the room leaves and offline users this causes) and
   * closes the store's Redis connection. Your own client is left open.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#holdTimer);
    try {
      await this.#recovery;
      this.#flush();
      await Promise.allSettled(this.#inFlight);
      if (this.#processId !== undefined) this.#retired.add(this.#processId);
      this.#processId = undefined;
      await this.#cleanRetired();
    } catch (error) {
      this.#events.error(unavailable(error));
    } finally {
      for (const op of this.#queue.splice(0)) op.reject(new StoreClosedError());
      this.#local.clear();
      this.#rooms.clear();
      this.#info.clear();
      this.#reported.clear();
      this.#events.clear();
      this.#redis.disconnect();
    }
  }

  // -- writes: queued, coalesced into batches, one script call per batch --

  #enqueue(op: Op): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#queue.push({ ...op, resolve, reject, queuedAt: Date.now() } as Operation);
      this.#scheduleFlush();
    });
  }

  /**
   * Fails the held operations that waited longer than the command timeout (a
   * sent one is bounded by the client's command timeout); the next recovery
   * republishes the truth they were part of.
   */
  #expireHeld(): void {
    this.#holdTimer = undefined;
    const deadline = Date.now() - this.#commandTimeoutMs;
    while (this.#queue.length > 0 && this.#queue[0]!.queuedAt <= deadline) {
      this.#needsRecovery = true;
      this.#queue.shift()!.reject(new StoreUnavailableError("Redis is unavailable: the operation waited too long"));
    }
    this.#holdQueue();
  }

  #holdQueue(): void {
    const oldest = this.#queue[0];
    if (!oldest || this.#holdTimer || this.#closed) return;
    const wait = Math.max(0, oldest.queuedAt + this.#commandTimeoutMs - Date.now());
    this.#holdTimer = setTimeout(() => this.#expireHeld(), wait).unref();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Sends everything queued, unless a recovery holds the queue. */
  #flush(): void {
    const processId = this.#processId;
    if (this.#recovery || processId === undefined) return this.#holdQueue();
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatchSize);
      const sending = this.#send(processId, batch).finally(() => this.#inFlight.delete(sending));
      this.#inFlight.add(sending);
    }
  }

  async #send(processId: string, batch: Operation[]): Promise<void> {
    let results: number[];
    try {
      results = await this.#apply(processId, batch);
    } catch (error) {
      if (isFenced(error)) {
        // definitive: nothing was applied. The recovery republishes the truth
        // and announces what it brings back.
        debug("process %s was fenced; recovering", processId);
        for (const op of batch) op.resolve(false);
      } else {
        // the batch may or may not have been applied: its transitions are settled by the recovery
        for (const { resolve, reject, queuedAt, ...op } of batch) {
          this.#inDoubt.push({ ...op, processId, reported: this.#reported.has(op.userId) });
        }
        for (const op of batch) op.reject(unavailable(error));
      }
      this.#needsRecovery = true;
      void this.#recoverSafely();
      return;
    }
    batch.forEach((op, i) => {
      if (results[i] === -1) {
        // another process counted this connection id for another user: ours stays local only
        op.reject(new ConnectionConflictError((op as { connectionId: string }).connectionId, op.userId, "(unknown)"));
        return;
      }
      if (results[i] === 1) this.#noteReported(transitionOf(op));
      op.resolve(results[i] === 1);
    });
  }

  /** One apply.lua call: the batch's rooms' keys follow the fixed ones. */
  #apply(processId: string, ops: Op[]): Promise<number[]> {
    const keys = [
      this.keys.processes,
      this.keys.users,
      this.keys.connections(processId),
      this.keys.memberships(processId),
      this.keys.info,
    ];
    const roomIndex = new Map<string, number>();
    const args: string[] = [processId, String(this.#leaseTimeoutMs)];
    for (const op of ops) {
      switch (op.op) {
        case "c":
          args.push("c", op.connectionId, op.userId, op.info);
          break;
        case "d":
          args.push("d", op.connectionId, "", "");
          break;
        case "u":
          args.push("u", op.userId, op.info, "");
          break;
        default: {
          let index = roomIndex.get(op.room);
          if (index === undefined) {
            keys.push(this.keys.room(op.room));
            roomIndex.set(op.room, (index = keys.length));
          }
          args.push(op.op, op.connectionId, op.room, String(index));
        }
      }
    }
    return this.#timed(this.#redis.presenceApply(keys.length, ...keys, ...args), "apply");
  }

  // -- leases, fencing and recovery --

  async #tick(): Promise<void> {
    if (this.#closed) return;
    if (this.#needsRecovery) return this.#recoverSafely();
    const processId = this.#processId;
    if (processId === undefined) return;
    try {
      const dead = await this.#heartbeatCall(processId, "renew");
      await this.#cleanDead(dead);
    } catch (error) {
      if (isFenced(error)) {
        debug("heartbeat: process %s was declared dead; recovering", processId);
        this.#needsRecovery = true;
        return this.#recoverSafely();
      }
      this.#events.error(unavailable(error));
    }
  }

  #heartbeatCall(processId: string, mode: "register" | "renew"): Promise<string[]> {
    return this.#timed(
      this.#redis.presenceHeartbeat(this.keys.processes, this.keys.cleanups, processId, String(this.#leaseTimeoutMs), mode, "16"),
      "heartbeat",
    );
  }

  #recoverSafely(): Promise<void> {
    this.#recovery ??= this.#recover()
      .catch((error: unknown) => {
        this.#needsRecovery = true;
        debug("recovery failed, next heartbeat retries: %s", (error as Error).message);
        this.#events.error(unavailable(error));
      })
      .finally(() => {
        this.#recovery = undefined;
        if (!this.#closed) this.#flush();
      });
    return this.#recovery;
  }

  /**
   * Moves this store to a new process id: registers it, publishes every open
   * connection and room membership under it, removes what the old ids left
   * in Redis, then settles the operations whose replies were lost. Counting
   * the new before removing the old means users who stay online see no leave
   * and no join.
   */
  async #recover(): Promise<void> {
    if (this.#closed || !this.#needsRecovery) return;
    this.#needsRecovery = false;
    await Promise.allSettled(this.#inFlight);

    const previous = this.#processId;
    const processId = randomUUID();
    await this.#heartbeatCall(processId, "register");
    if (previous !== undefined) this.#retired.add(previous);
    this.#processId = processId;
    debug("registered as process %s (was %s)", processId, previous ?? "none");

    const announced = new Set<string>();
    const announce = (transition: Transition) => {
      announced.add(keyOf(transition));
      this.#announce(transition);
    };

    // what is still queued is sent after the recovery and answers for itself
    const queued = new Set(this.#queue.flatMap((op) => (op.op === "c" || op.op === "j" ? [`${op.op}:${op.connectionId}:${"room" in op ? op.room : ""}`] : [])));
    const ops: Op[] = [];
    for (const [connectionId, userId] of this.#local.connections()) {
      if (!queued.has(`c:${connectionId}:`)) ops.push({ op: "c", connectionId, userId, info: this.#info.get(userId) ?? "" });
      for (const room of this.#rooms.get(connectionId) ?? []) {
        if (!queued.has(`j:${connectionId}:${room}`)) ops.push({ op: "j", connectionId, userId, room });
      }
    }
    for (let i = 0; i < ops.length; i += this.#maxBatchSize) {
      const chunk = ops.slice(i, i + this.#maxBatchSize);
      const results = await this.#apply(processId, chunk);
      chunk.forEach((op, j) => results[j] === 1 && announce(transitionOf(op)));
    }

    const inDoubt = this.#inDoubt;
    this.#inDoubt = [];
    // an operation still recorded under the old id was not applied: the
    // cleanup below removes it and announces what that changes
    const unsettled: InDoubt[] = [];
    for (const entry of inDoubt) {
      if (entry.op === "d" && (await this.#timed(this.#redis.hexists(this.keys.connections(entry.processId), entry.connectionId), "HEXISTS"))) continue;
      if (entry.op === "l" && (await this.#timed(this.#redis.hexists(this.keys.memberships(entry.processId), membershipField(entry.connectionId, entry.room)), "HEXISTS"))) continue;
      unsettled.push(entry);
    }
    await this.#cleanRetired(announce);

    // what is left: the lost reply may have been a transition nobody reported
    for (const entry of unsettled) {
      if (entry.op === "u") continue; // republished with the connections, or the caller's to retry
      const transition = transitionOf(entry);
      if (announced.has(keyOf(transition))) continue;
      const { userId } = entry;
      if (entry.op === "c" || entry.op === "d") {
        const online = (await this.#timed(this.#redis.hexists(this.keys.users, userId), "HEXISTS")) === 1;
        if (entry.op === "c" && online && !entry.reported && !this.#reported.has(userId) && this.#local.isOnline(userId)) {
          announce(transition);
        } else if (entry.op === "d" && !online && !this.#local.isOnline(userId)) {
          announce(transition);
        }
      } else {
        const inRoom = (await this.#timed(this.#redis.hexists(this.keys.room(entry.room), userId), "HEXISTS")) === 1;
        const here = [...this.#rooms].some(([connectionId, rooms]) => rooms.has(entry.room) && this.#local.userOf(connectionId) === userId);
        if (entry.op === "j" ? inRoom && here : !inRoom && !here) announce(transition);
      }
    }
  }

  /** Keeps #reported in step with what this store told its listeners and callers. */
  #noteReported(transition: Transition): void {
    if (transition.type === "connected" && this.#local.isOnline(transition.userId)) this.#reported.add(transition.userId);
    else if (transition.type === "disconnected") this.#reported.delete(transition.userId);
  }

  #announce(transition: Transition): void {
    this.#noteReported(transition);
    this.#events.announce(transition);
  }

  // -- cleanup of dead processes --

  async #cleanRetired(announce = (t: Transition) => this.#announce(t)): Promise<void> {
    for (const processId of [...this.#retired]) {
      const status = await this.#cleanProcess(processId, "force", announce);
      if (status !== "busy") this.#retired.delete(processId);
    }
  }

  async #cleanDead(processIds: string[]): Promise<void> {
    if (this.#cleaning) return; // the previous round is still at work
    this.#cleaning = true;
    try {
      for (const processId of processIds) {
        if (processId === this.#processId || this.#closed) continue;
        await this.#cleanProcess(processId, "expired");
      }
    } finally {
      this.#cleaning = false;
    }
  }

  /**
   * Removes a dead process: claims it, takes its memberships out of their
   * rooms, then removes its connections, chunk by chunk. Resolves with the
   * last status.
   */
  async #cleanProcess(
    processId: string,
    mode: "expired" | "force",
    announce = (t: Transition) => this.#announce(t),
  ): Promise<string> {
    const cleanup = (chunk: number, claimMode: string) =>
      this.#timed(
        this.#redis.presenceCleanup(
          this.keys.processes,
          this.keys.cleanups,
          this.keys.users,
          this.keys.connections(processId),
          this.keys.info,
          processId,
          this.id,
          String(this.#leaseTimeoutMs),
          String(chunk),
          claimMode,
        ),
        "cleanup",
      );

    const [claim] = await cleanup(0, mode);
    if (claim !== "claimed") return claim!;

    const memberships = this.keys.memberships(processId);
    let cursor = "0";
    do {
      const [next, entries] = await this.#timed(this.#redis.hscan(memberships, cursor, "COUNT", this.#cleanupChunkSize), "HSCAN");
      cursor = next;
      if (entries.length === 0) continue;
      const keys = [this.keys.processes, memberships];
      const roomIndex = new Map<string, number>();
      const args = [processId];
      for (let i = 0; i < entries.length; i += 2) {
        const { room } = roomOfMembership(entries[i]!);
        let index = roomIndex.get(room);
        if (index === undefined) {
          keys.push(this.keys.room(room));
          roomIndex.set(room, (index = keys.length));
        }
        args.push(entries[i]!, String(index));
      }
      const [status, ...left] = await this.#timed(this.#redis.presenceCleanupRooms(keys.length, ...keys, ...args), "cleanup-rooms");
      if (status === "alive") return status;
      for (let i = 0; i + 1 < left.length; i += 2) announce({ type: "left", room: left[i]!, userId: left[i + 1]! });
    } while (cursor !== "0");

    for (;;) {
      const [status, ...offline] = await cleanup(this.#cleanupChunkSize, "expired");
      for (const userId of offline) announce({ type: "disconnected", userId });
      if (status !== "more") {
        if (status === "done") debug("cleaned up process %s", processId);
        return status!;
      }
    }
  }

  // -- reads --

  /** Pages of a users hash (all users, or one room's), with each user's info. */
  async *#scan(key: string, pageSize = 100): AsyncIterable<UserPresence[]> {
    const count = Math.max(1, pageSize);
    const seen = new Set<string>(); // HSCAN may return an entry twice while the hash resizes
    let cursor = "0";
    do {
      const [next, entries] = await this.#read(() => this.#redis.hscan(key, cursor, "COUNT", count));
      cursor = next;
      const page: UserPresence[] = [];
      for (let i = 0; i + 1 < entries.length; i += 2) {
        const userId = entries[i]!;
        if (seen.has(userId)) continue;
        seen.add(userId);
        page.push({ userId, connections: Number(entries[i + 1]) });
      }
      if (page.length === 0) continue;
      const infos = await this.#read(() => this.#redis.hmget(this.keys.info, ...page.map((u) => u.userId)));
      page.forEach((user, i) => {
        const json = infos[i];
        if (json) user.info = parseUserInfo(json);
      });
      yield page;
    } while (cursor !== "0");
  }

  #timed<T>(call: Promise<T>, what: string): Promise<T> {
    return withTimeout(call, this.#commandTimeoutMs, what);
  }

  async #read<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await this.#timed(call(), "a read");
    } catch (error) {
      throw unavailable(error);
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }
}

/** Factory form, in the style of Socket.IO's `createAdapter()`. */
export function createRedisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}
