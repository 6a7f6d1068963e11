import { randomUUID } from "node:crypto";
import {
  ConnectionConflictError,
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
  type TransitionListener,
  type UserInfo,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";
import createDebug from "debug";
import { Cleaner } from "./cleaner";
import { assertRedisClient, connect } from "./client";
import type { FencedError } from "./errors";
import { presenceKeys, type PresenceKeys } from "./keys";
import { Lease } from "./lease";
import { LocalTruth } from "./local-truth";
import { resolveOptions, type RedisStoreOptions, type ResolvedOptions } from "./options";
import { Recovery } from "./recovery";
import { PresenceScripts, transitionOf, type Op } from "./scripts";
import { WriteQueue } from "./write-queue";

const debug = createDebug("presence:redis");

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
  readonly #recovery: Recovery;
  readonly #lease: Lease;
  readonly #events = new StoreEvents();
  readonly #truth = new LocalTruth();
  #recovering: Promise<void> | undefined;
  #needsRecovery = true;
  #fence: FencedError | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: RedisStoreOptions) {
    assertRedisClient(options?.redis);
    this.#options = resolveOptions(options);
    const { maxUserIdBytes, maxRoomBytes, maxUserInfoBytes, commandTimeoutMs, leaseTimeoutMs, maxBatchSize, cleanupChunkSize } = this.#options;
    this.limits = Object.freeze({ maxUserIdBytes, maxRoomBytes, maxUserInfoBytes });
    this.keys = presenceKeys(this.#options.prefix);
    this.#scripts = new PresenceScripts(connect(this.#options.redis, commandTimeoutMs, `presence:${this.id}`), this.keys, commandTimeoutMs);
    this.#queue = new WriteQueue(this.#scripts, { leaseTimeoutMs, maxBatchSize, commandTimeoutMs }, (fence) => void this.#recover(fence));
    this.#cleaner = new Cleaner(this.#scripts, { storeId: this.id, leaseTimeoutMs, cleanupChunkSize }, (t) => this.#events.announce(t));
    const parts = { storeId: this.id, leaseTimeoutMs, keys: this.keys, scripts: this.#scripts, queue: this.#queue, cleaner: this.#cleaner };
    this.#recovery = new Recovery({ ...parts, truth: this.#truth, events: this.#events, closed: () => this.#closed });
    this.#lease = new Lease({
      ...parts,
      heartbeatMs: this.#options.heartbeatMs,
      retired: this.#recovery.retired,
      recover: (fence) => this.#recover(fence),
      needsRecovery: () => this.#needsRecovery,
      error: (error) => this.#events.error(error),
    });
    this.#lease.start();
    void this.#recover();
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
    const owner = this.#truth.connections.userOf(connectionId);
    if (owner !== undefined) {
      if (owner !== userId) throw new ConnectionConflictError(connectionId, userId, owner);
      return false; // a repeat: nothing to send
    }
    this.#truth.connections.connect(connectionId, userId);
    if (json !== "") this.#truth.info.set(userId, json);
    return this.#write({ op: "c", connectionId, userId, info: json });
  }

  async disconnect(connectionId: string): Promise<boolean> {
    this.#assertOpen();
    const userId = this.#truth.connections.userOf(connectionId);
    if (userId === undefined) return false;
    // the rooms a disconnect leaves implicitly are announced, not answered
    for (const room of this.#truth.rooms.get(connectionId) ?? []) {
      this.#write({ op: "l", connectionId, userId, room }).then(
        (left) => left && this.#events.announce({ type: "left", room, userId }),
        () => {}, // announced when Redis's record settles it
      );
    }
    this.#truth.rooms.delete(connectionId);
    if (this.#truth.connections.disconnect(connectionId) !== undefined) this.#truth.info.delete(userId);
    return this.#write({ op: "d", connectionId, userId });
  }

  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    this.#assertOpen();
    assertUserId(userId, this.limits.maxUserIdBytes);
    const json = serializeUserInfo(info, this.limits.maxUserInfoBytes);
    if (this.#truth.connections.isOnline(userId)) this.#truth.info.set(userId, json);
    return this.#write({ op: "u", userId, info: json });
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    this.#assertOpen();
    const json = await this.#scripts.command<string | null>("HGET info", ["HGET", this.keys.info, userId]);
    return json === null ? undefined : parseUserInfo(json);
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    this.#assertOpen();
    assertRoom(room, this.limits.maxRoomBytes);
    const userId = this.#truth.connections.userOf(connectionId);
    if (userId === undefined) return false;
    let rooms = this.#truth.rooms.get(connectionId);
    if (rooms?.has(room)) return false; // a repeat
    if (!rooms) this.#truth.rooms.set(connectionId, (rooms = new Set()));
    rooms.add(room);
    return this.#write({ op: "j", connectionId, userId, room });
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    this.#assertOpen();
    assertRoom(room, this.limits.maxRoomBytes);
    const userId = this.#truth.connections.userOf(connectionId);
    const rooms = this.#truth.rooms.get(connectionId);
    if (userId === undefined || !rooms?.delete(room)) return false;
    if (rooms.size === 0) this.#truth.rooms.delete(connectionId);
    return this.#write({ op: "l", connectionId, userId, room });
  }

  async isUserConnected(userId: string): Promise<boolean> {
    this.#assertOpen();
    assertUserId(userId, this.limits.maxUserIdBytes);
    return (await this.#scripts.command<number>("HEXISTS", ["HEXISTS", this.keys.users, userId])) === 1;
  }

  async usersCount(): Promise<number> {
    this.#assertOpen();
    return this.#scripts.command<number>("HLEN", ["HLEN", this.keys.users]);
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
    return (await this.#scripts.command<number>("HEXISTS", ["HEXISTS", this.keys.room(room), userId])) === 1;
  }

  async roomUsersCount(room: string): Promise<number> {
    this.#assertOpen();
    return this.#scripts.command<number>("HLEN", ["HLEN", this.keys.room(room)]);
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
    while (!this.#closed && (this.#recovering || this.#needsRecovery || this.#queue.busy || this.#queue.queued().length > 0)) {
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
    this.#lease.stop();
    try {
      await this.#recovering;
      const deadline = Date.now() + this.#options.commandTimeoutMs;
      while ((this.#queue.queued().length > 0 || this.#queue.busy) && Date.now() < deadline && !this.#needsRecovery) {
        if (this.#queue.inDoubt()) await this.#queue.settle();
        await this.#queue.idle();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const processId = this.#queue.processId;
      if (processId !== undefined) this.#recovery.retired.add(processId);
      this.#queue.hold();
      await this.#recovery.cleanRetired();
    } catch (error) {
      this.#events.error(error as Error);
    } finally {
      this.#queue.close(new StoreClosedError());
      this.#truth.clear();
      this.#events.clear();
      this.#scripts.close();
    }
  }

  // -- writes --

  #write(op: Op): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#queue.push({
        op,
        queuedAt: Date.now(),
        deliver: (result, late) => {
          this.#truth.noteCounted(op, result);
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

  // -- fencing and recovery --

  /** Runs a recovery (one at a time); a fence met meanwhile makes the next heartbeat run another. */
  #recover(fence?: FencedError): Promise<void> {
    if (fence) {
      debug("fenced: %s", fence.message);
      this.#fence = fence;
      this.#needsRecovery = true;
    }
    this.#recovering ??= (async () => {
      if (this.#closed || !this.#needsRecovery) return;
      this.#needsRecovery = false;
      const owed = this.#fence;
      this.#fence = undefined;
      if (!(await this.#recovery.run(owed))) this.#needsRecovery = true;
    })()
      .catch((error: unknown) => {
        this.#needsRecovery = true;
        debug("recovery failed, the next heartbeat retries: %s", (error as Error).message);
        this.#events.error(error as Error);
      })
      .finally(() => {
        this.#recovering = undefined;
      });
    return this.#recovering;
  }

  // -- reads --

  /** Pages of a users hash (all users, or one room's), with each user's info. */
  async *#scan(key: string, pageSize = 100): AsyncIterable<UserPresence[]> {
    const count = Math.max(1, pageSize);
    const seen = new Set<string>(); // HSCAN may return an entry twice while the hash resizes
    let cursor = "0";
    do {
      const [next, entries] = await this.#scripts.command<[string, string[]]>("HSCAN", ["HSCAN", key, cursor, "COUNT", String(count)]);
      cursor = next;
      const page: UserPresence[] = [];
      for (let i = 0; i + 1 < entries.length; i += 2) {
        const userId = entries[i]!;
        if (seen.has(userId)) continue;
        seen.add(userId);
        page.push({ userId, connections: Number(entries[i + 1]) });
      }
      if (page.length === 0) continue;
      const infos = await this.#scripts.command<Array<string | null>>("HMGET info", ["HMGET", this.keys.info, ...page.map((u) => u.userId)]);
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
