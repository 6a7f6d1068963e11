import { randomUUID } from "node:crypto";
import {
  ConnectionConflictError,
  ConnectionCounter,
  StoreClosedError,
  StoreEvents,
  assertConnectionId,
  assertRoom,
  assertUserId,
  parseUserInfo,
  serializeUserInfo,
  type ErrorListener,
  type PresenceLimits,
  type PresenceStore,
  type Transition,
  type TransitionListener,
  type UserInfo,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";
import createDebug from "debug";
import { Cleaner } from "./cleaner";
import { assertIoredisClient, duplicateClient } from "./client";
import { pack, unpackPair as unpackMembership, type OperationResult } from "./encoding";
import { FencedError } from "./errors";
import { presenceKeys, type PresenceKeys } from "./keys";
import { resolveOptions, type RedisStoreOptions, type ResolvedOptions } from "./options";
import { PresenceScripts, type Op } from "./scripts";
import { WriteQueue, type Operation } from "./write-queue";

const debug = createDebug("presence:redis");

/** The transition an operation made, when apply.lua answered 1. */
function transitionOf(op: Op): Transition {
  switch (op.op) {
    case "c":
    case "r":
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

/** What this process had counted in Redis when it learned Redis lost data: who was announced online through it. */
interface Counted {
  users: Set<string>;
  /** pack(room, user) */
  memberships: Set<string>;
}

/**
 * Exact all-users presence on Redis, for every process of every host that
 * shares one Redis (or Redis Cluster), with rooms and user info.
 *
 * Each process keeps the truth of its own open connections in memory and
 * projects it onto Redis through the write queue (numbered batches, settled
 * from Redis's record when a reply is lost). A process holds a lease it
 * renews on every heartbeat; when it dies, the cleaner of another process
 * removes its connections in bounded chunks and announces, from its outbox
 * in Redis, the users this leaves offline. A process that finds it was
 * fenced (declared dead, or Redis lost or rolled back its data) takes a new
 * process id and republishes its connections: presence converges to the
 * connections that are really open.
 */
export class RedisStore implements PresenceStore {
  readonly keys: PresenceKeys;
  /** This store's identity as a cleaner: stable across its process ids. */
  readonly id = randomUUID();
  readonly limits: Readonly<PresenceLimits>;

  readonly #options: ResolvedOptions;
  readonly #scripts: PresenceScripts;
  readonly #queue: WriteQueue;
  readonly #cleaner: Cleaner;
  readonly #events = new StoreEvents();
  /** The truth of this process: its open connections, their rooms, and its users' info (JSON). */
  readonly #local = new ConnectionCounter();
  readonly #rooms = new Map<string, Set<string>>();
  readonly #info = new Map<string, string>();
  /** Connections (id -> user) and memberships (connection + room -> pack(room, user)) Redis confirmed under the current process id. */
  readonly #countedConnections = new Map<string, string>();
  readonly #countedMemberships = new Map<string, string>();
  /** Earlier process ids of this store whose data may still be in Redis. */
  readonly #retired = new Set<string>();
  #recovery: Promise<void> | undefined;
  #needsRecovery = true;
  #fence: FencedError | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #ticking = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: RedisStoreOptions) {
    assertIoredisClient(options?.redis);
    this.#options = resolveOptions(options);
    const { maxUserIdBytes, maxRoomBytes, maxUserInfoBytes, commandTimeoutMs, leaseTimeoutMs, maxBatchSize, cleanupChunkSize } = this.#options;
    this.limits = Object.freeze({ maxUserIdBytes, maxRoomBytes, maxUserInfoBytes });
    this.keys = presenceKeys(this.#options.prefix);
    const client = duplicateClient(this.#options.redis, commandTimeoutMs, `presence:${this.id}`);
    client.on("error", (error: Error) => debug("redis connection error: %s", error.message));
    this.#scripts = new PresenceScripts(client, this.keys, commandTimeoutMs);
    this.#queue = new WriteQueue(this.#scripts, { leaseTimeoutMs, maxBatchSize, commandTimeoutMs }, (error) => {
      debug("fenced: %s", error.message);
      this.#fence = error;
      this.#needsRecovery = true;
      void this.#recoverSafely();
    });
    this.#cleaner = new Cleaner(this.#scripts, { storeId: this.id, leaseTimeoutMs, cleanupChunkSize }, (t) => this.#events.announce(t));
    this.#heartbeat = setInterval(() => void this.#tick(), this.#options.heartbeatMs).unref();
    void this.#recoverSafely();
  }

  /** The process id this store currently writes under (changes after a fence). */
  get processId(): string | undefined {
    return this.#queue.processId;
  }

  async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    this.#assertOpen();
    assertConnectionId(connectionId);
    assertUserId(userId, this.limits.maxUserIdBytes);
    const json = info === undefined ? "" : serializeUserInfo(info, this.limits.maxUserInfoBytes);
    const owner = this.#local.userOf(connectionId);
    if (owner !== undefined) {
      if (owner !== userId) throw new ConnectionConflictError(connectionId, userId, owner);
      return false; // a repeat: nothing to send
    }
    this.#local.connect(connectionId, userId);
    if (json !== "") this.#info.set(userId, json);
    return this.#write({ op: "c", connectionId, userId, info: json });
  }

  async disconnect(connectionId: string): Promise<boolean> {
    this.#assertOpen();
    const userId = this.#local.userOf(connectionId);
    if (userId === undefined) return false;
    // the rooms a disconnect leaves implicitly are announced, not answered
    for (const room of this.#rooms.get(connectionId) ?? []) {
      this.#write({ op: "l", connectionId, userId, room }).then(
        (left) => left && this.#events.announce({ type: "left", room, userId }),
        () => {}, // announced when Redis's record settles it
      );
    }
    this.#rooms.delete(connectionId);
    if (this.#local.disconnect(connectionId) !== undefined) this.#info.delete(userId);
    return this.#write({ op: "d", connectionId, userId });
  }

  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    this.#assertOpen();
    assertUserId(userId, this.limits.maxUserIdBytes);
    const json = serializeUserInfo(info, this.limits.maxUserInfoBytes);
    if (this.#local.isOnline(userId)) this.#info.set(userId, json);
    return this.#write({ op: "u", userId, info: json });
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    this.#assertOpen();
    const json = await this.#scripts.call("HGET info", () => this.#scripts.redis.hget(this.keys.info, userId));
    return json === null ? undefined : parseUserInfo(json);
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    this.#assertOpen();
    assertRoom(room, this.limits.maxRoomBytes);
    const userId = this.#local.userOf(connectionId);
    if (userId === undefined) return false;
    let rooms = this.#rooms.get(connectionId);
    if (rooms?.has(room)) return false; // a repeat
    if (!rooms) this.#rooms.set(connectionId, (rooms = new Set()));
    rooms.add(room);
    return this.#write({ op: "j", connectionId, userId, room });
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    this.#assertOpen();
    assertRoom(room, this.limits.maxRoomBytes);
    const userId = this.#local.userOf(connectionId);
    const rooms = this.#rooms.get(connectionId);
    if (userId === undefined || !rooms?.delete(room)) return false;
    if (rooms.size === 0) this.#rooms.delete(connectionId);
    return this.#write({ op: "l", connectionId, userId, room });
  }

  async isUserConnected(userId: string): Promise<boolean> {
    this.#assertOpen();
    assertUserId(userId, this.limits.maxUserIdBytes);
    return (await this.#scripts.call("HEXISTS", () => this.#scripts.redis.hexists(this.keys.users, userId))) === 1;
  }

  async usersCount(): Promise<number> {
    this.#assertOpen();
    return this.#scripts.call("HLEN", () => this.#scripts.redis.hlen(this.keys.users));
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
    return (await this.#scripts.call("HEXISTS", () => this.#scripts.redis.hexists(this.keys.room(room), userId))) === 1;
  }

  async roomUsersCount(room: string): Promise<number> {
    this.#assertOpen();
    return this.#scripts.call("HLEN", () => this.#scripts.redis.hlen(this.keys.room(room)));
  }

  /** A room's users in pages, streamed with HSCAN of that room's hash alone. */
  roomUsers(room: string, options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.#assertOpen();
    return this.#scan(this.keys.room(room), options.pageSize);
  }

  /**
   * Resolves once nothing this store was asked to write is queued, in
   * flight, in doubt or being republished: every outcome is known and
   * reported. Waits as long as Redis is away; bound it yourself.
   */
  async settled(): Promise<void> {
    while (!this.#closed && (this.#recovery || this.#needsRecovery || this.#queue.busy || this.#queue.queued().length > 0)) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
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
    try {
      await this.#recovery;
      const deadline = Date.now() + this.#options.commandTimeoutMs;
      while ((this.#queue.queued().length > 0 || this.#queue.busy) && Date.now() < deadline && !this.#needsRecovery) {
        if (this.#queue.inDoubt()) await this.#queue.settle();
        await this.#queue.idle();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const processId = this.#queue.processId;
      if (processId !== undefined) this.#retired.add(processId);
      this.#queue.hold();
      await this.#cleanRetired();
    } catch (error) {
      this.#events.error(error as Error);
    } finally {
      this.#queue.close(new StoreClosedError());
      this.#local.clear();
      this.#rooms.clear();
      this.#info.clear();
      this.#events.clear();
      this.#scripts.redis.disconnect();
    }
  }

  // -- writes --

  #write(op: Op): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#queue.push({
        op,
        queuedAt: Date.now(),
        deliver: (result, late) => {
          this.#noteCounted(op, result);
          if (result === -1) {
            // another process counted this connection id for another user: ours stays local only
            if (!late) reject(new ConnectionConflictError((op as { connectionId: string }).connectionId, op.userId, "(unknown)"));
          } else if (!late) resolve(result === 1);
          else if (result === 1) this.#events.announce(transitionOf(op));
        },
        fail: reject,
        drop: () => resolve(false), // never called: a caller's operation is kept through a fence
      });
    });
  }

  /** Keeps what Redis confirmed under the current process id: what a data loss takes away from the announced state. */
  #noteCounted(op: Op, result: OperationResult): void {
    if (result === -1) return;
    switch (op.op) {
      case "c":
      case "r":
        this.#countedConnections.set(op.connectionId, op.userId);
        break;
      case "d":
        this.#countedConnections.delete(op.connectionId);
        break;
      case "j":
        if (this.#countedConnections.has(op.connectionId)) this.#countedMemberships.set(pack(op.connectionId, op.room), pack(op.room, op.userId));
        break;
      case "l":
        this.#countedMemberships.delete(pack(op.connectionId, op.room));
        break;
    }
  }

  // -- leases, fencing and recovery --

  async #tick(): Promise<void> {
    if (this.#closed || this.#ticking) return;
    if (this.#needsRecovery) return this.#recoverSafely();
    const processId = this.#queue.processId;
    if (processId === undefined) return;
    this.#ticking = true;
    try {
      if (this.#queue.inDoubt()) await this.#queue.settle();
      const { dead, outbox } = await this.#scripts.renew(processId, this.#options.leaseTimeoutMs, this.#queue.acked, this.id, this.#cleaner.announcedThrough);
      this.#cleaner.deliver(outbox);
      for (const id of dead) {
        if (this.#closed || id === this.#queue.processId) continue;
        const status = await this.#cleaner.clean(id, "expired");
        if (this.#retired.has(id) && status !== "busy" && status !== "alive") this.#retired.delete(id);
      }
    } catch (error) {
      if (error instanceof FencedError && error.processId === this.#queue.processId) {
        debug("heartbeat: %s; recovering", error.message);
        this.#fence = error;
        this.#needsRecovery = true;
        this.#ticking = false;
        return this.#recoverSafely();
      }
      this.#events.error(error as Error);
    } finally {
      this.#ticking = false;
    }
  }

  #recoverSafely(): Promise<void> {
    this.#recovery ??= this.#recover()
      .catch((error: unknown) => {
        this.#needsRecovery = true;
        debug("recovery failed, next heartbeat retries: %s", (error as Error).message);
        this.#events.error(error as Error);
      })
      .finally(() => {
        this.#recovery = undefined;
      });
    return this.#recovery;
  }

  /**
   * Moves this store to a new process id: settles the batch in doubt under
   * the old one, registers the new one, republishes every open connection
   * and room membership under it, then removes what the old ids left in
   * Redis. Counting the new before removing the old means users who stay
   * online see no leave and no join. When Redis lost data (the old record is
   * gone or behind), what was announced through this process is what it had
   * counted: joins of those users are not announced again, and their leaves
   * are announced once the others had a lease to republish theirs.
   */
  async #recover(): Promise<void> {
    if (this.#closed || !this.#needsRecovery) return;
    this.#needsRecovery = false;
    this.#queue.hold();
    await this.#queue.idle();
    // the batch in doubt is settled under its own id first: applied, sent again, or fenced
    while (this.#queue.inDoubt() && !this.#closed) {
      if (!(await this.#queue.settle())) throw new Error("the batch in doubt could not be settled yet");
    }
    const previous = this.#queue.processId;
    const fence = this.#fence;
    this.#fence = undefined;
    let dataLost = false;
    if (previous !== undefined && fence !== undefined) {
      dataLost = fence.reason === "behind" || (await this.#scripts.record(previous)) === undefined;
    }
    const before: Counted | undefined = dataLost
      ? { users: new Set(this.#countedConnections.values()), memberships: new Set(this.#countedMemberships.values()) }
      : undefined;

    const processId = randomUUID();
    await this.#scripts.register(processId, this.#options.leaseTimeoutMs, this.id, this.#cleaner.announcedThrough);
    if (previous !== undefined) this.#retired.add(previous);
    if (dataLost) {
      debug("Redis lost data of process %s", previous);
      this.#cleaner.resetOutbox();
    }
    this.#countedConnections.clear();
    this.#countedMemberships.clear();
    debug("registered as process %s (was %s)", processId, previous ?? "none");

    // republish, ahead of anything queued
    const republished: Promise<boolean>[] = [];
    const operations: Operation[] = [];
    const republish = (op: Op, known: boolean) => {
      republished.push(
        new Promise<boolean>((resolve) => {
          operations.push({
            op,
            republish: true,
            queuedAt: Date.now(),
            deliver: (result) => {
              this.#noteCounted(op, result);
              if (result === 1 && !known) this.#events.announce(transitionOf(op));
              resolve(true);
            },
            fail: () => {}, // in doubt: delivered once settled
            drop: () => resolve(false),
          });
        }),
      );
    };
    // what is still queued is sent after the republish and answers for itself
    const queued = new Set<string>();
    for (const { op } of this.#queue.queued()) {
      if (op.op === "c") queued.add(op.connectionId);
      else if (op.op === "j") queued.add(pack(op.connectionId, op.room));
    }
    for (const [connectionId, userId] of this.#local.connections()) {
      if (queued.has(connectionId)) continue;
      republish({ op: "r", connectionId, userId, info: this.#info.get(userId) ?? "" }, before?.users.has(userId) ?? false);
      for (const room of this.#rooms.get(connectionId) ?? []) {
        if (!queued.has(pack(connectionId, room))) republish({ op: "j", connectionId, userId, room }, before?.memberships.has(pack(room, userId)) ?? false);
      }
    }
    for (let i = operations.length - 1; i >= 0; i--) this.#queue.push(operations[i]!, true);
    this.#queue.start(processId);
    if (!(await Promise.all(republished)).every(Boolean)) return; // fenced again: the next recovery starts over

    const announcedLeaves = new Set<string>();
    await this.#cleanRetired(
      before &&
        ((t) => {
          const known = t.type === "left" ? before.memberships.has(pack(t.room, t.userId)) : before.users.has(t.userId);
          if (known) announcedLeaves.add(t.type === "left" ? pack(t.room, t.userId) : t.userId);
          return known;
        }),
    );
    if (before) this.#settleLossLater(before, announcedLeaves);
  }

  /**
   * After a data loss, the users (and room members) this process had counted
   * and no longer holds are announced leaving once every other process had
   * a lease to republish its own: if nobody brought them back, they left.
   */
  #settleLossLater(before: Counted, announced: Set<string>): void {
    setTimeout(() => {
      void (async () => {
        for (const userId of before.users) {
          if (this.#closed || announced.has(userId) || this.#local.isOnline(userId)) continue;
          if ((await this.#scripts.call("HEXISTS", () => this.#scripts.redis.hexists(this.keys.users, userId))) === 0) {
            this.#events.announce({ type: "disconnected", userId });
          }
        }
        for (const membership of before.memberships) {
          if (this.#closed || announced.has(membership)) continue;
          const [room, userId] = unpackMembership(membership);
          const here = [...this.#rooms].some(([connectionId, rooms]) => rooms.has(room) && this.#local.userOf(connectionId) === userId);
          if (here) continue;
          if ((await this.#scripts.call("HEXISTS", () => this.#scripts.redis.hexists(this.keys.room(room), userId))) === 0) {
            this.#events.announce({ type: "left", room, userId });
          }
        }
      })().catch((error: unknown) => this.#events.error(error as Error));
    }, this.#options.leaseTimeoutMs).unref();
  }

  async #cleanRetired(filter?: (t: Transition) => boolean): Promise<void> {
    for (const processId of [...this.#retired]) {
      const status = await this.#cleaner.clean(processId, "force", filter);
      if (status === "busy") continue;
      this.#retired.delete(processId);
      await this.#scripts.forget([processId]);
    }
  }

  // -- reads --

  /** Pages of a users hash (all users, or one room's), with each user's info. */
  async *#scan(key: string, pageSize = 100): AsyncIterable<UserPresence[]> {
    const count = Math.max(1, pageSize);
    const seen = new Set<string>(); // HSCAN may return an entry twice while the hash resizes
    let cursor = "0";
    do {
      const [next, entries] = await this.#scripts.call("HSCAN", () => this.#scripts.redis.hscan(key, cursor, "COUNT", count));
      cursor = next;
      const page: UserPresence[] = [];
      for (let i = 0; i + 1 < entries.length; i += 2) {
        const userId = entries[i]!;
        if (seen.has(userId)) continue;
        seen.add(userId);
        page.push({ userId, connections: Number(entries[i + 1]) });
      }
      if (page.length === 0) continue;
      const infos = await this.#scripts.call("HMGET info", () => this.#scripts.redis.hmget(this.keys.info, ...page.map((u) => u.userId)));
      page.forEach((user, i) => {
        const json = infos[i];
        if (json) user.info = parseUserInfo(json);
      });
      yield page;
    } while (cursor !== "0");
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }
}


/** Factory form, in the style of Socket.IO's `createAdapter()`. */
export function createRedisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}
