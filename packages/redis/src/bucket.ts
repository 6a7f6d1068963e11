import { randomUUID } from "node:crypto";
import {
  ConnectionConflictError,
  LocalPresence,
  StoreBase,
  StoreClosedError,
  assertUserId,
  assertUserIds,
  parseUserInfo,
  serializeUserInfo,
  type PresenceLimits,
  type PresenceStore,
  type UserInfo,
  type UserPresence,
  type UserState,
  type UsersPageOptions,
} from "@presence/core";
import createDebug from "debug";
import { Cleaner } from "./cleaner";
import type { Connection } from "./client";
import { Heartbeat } from "./heartbeat";
import type { PresenceKeys } from "./keys";
import { Ledger } from "./ledger";
import { Lifecycle, type Phase } from "./lifecycle";
import { transitionOf, type Operation } from "./operations";
import type { ResolvedOptions } from "./options";
import { Recovery } from "./recovery";
import { PresenceScripts } from "./scripts";
import { Slots } from "./slots";
import { WriteQueue } from "./write-queue";

const debug = createDebug("presence:redis");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One bucket of a deployment: the users whose ids hash to it, with their
 * connections, rooms and info, all under the bucket's one hash tag, so that
 * every decision about them is one script in one slot (see keys.ts).
 *
 * Each process keeps the truth of its own open connections in core's
 * `LocalPresence` and projects it onto Redis through the write queue
 * (numbered batches, settled from Redis's record when a reply is lost).
 * Redis decides every transition and gives it a version; the bucket
 * announces each one through `onTransition`, before the call that made it
 * resolves. A process holds a lease in each bucket, renewed on every
 * heartbeat; when it dies, the cleaner of another process removes its
 * connections in bounded chunks and announces, from its outbox in Redis, the
 * users this leaves offline. A process that finds it was fenced in a bucket
 * (declared dead, or Redis lost or rolled back the bucket's data: a failover
 * that lost writes looks the same) recovers there under a new process id and
 * republishes its connections of that bucket (lifecycle.ts, recovery.ts):
 * presence converges to the connections that are really open.
 */
export class Bucket extends StoreBase implements PresenceStore {
  readonly keys: PresenceKeys;
  /** This store's identity: stable across its process ids. */
  readonly id = randomUUID();

  readonly #options: ResolvedOptions;
  readonly #local: LocalPresence;
  readonly #ledger = new Ledger();
  readonly #slots = new Slots();
  readonly #scripts: PresenceScripts;
  readonly #queue: WriteQueue;
  readonly #cleaner: Cleaner;
  readonly #lifecycle: Lifecycle;
  readonly #recovery: Recovery;
  readonly #heartbeat: Heartbeat;

  /** `connection` is shared by every bucket of the store, and closed by it. */
  constructor(options: ResolvedOptions, connection: Connection, keys: PresenceKeys) {
    super();
    this.#options = options;
    const { maxUserIdBytes, maxRoomBytes, maxUserInfoBytes, commandTimeoutMs, leaseTimeoutMs, maxBatchSize, cleanupChunkSize, heartbeatMs } = this.#options;
    this.#local = new LocalPresence({ maxUserIdBytes, maxRoomBytes, maxUserInfoBytes });
    this.keys = keys;
    const scripts = (this.#scripts = new PresenceScripts(connection, keys, { commandTimeoutMs, leaseTimeoutMs }));
    const lifecycle = (this.#lifecycle = new Lifecycle({
      run: (plan) => this.#recovery.run(plan),
      entered: (phase) => {
        if (phase === "fenced") this.#queue.hold();
      },
      error: (error) => this.events.error(error),
    }));
    const queue = (this.#queue = new WriteQueue(scripts, { maxBatchSize, commandTimeoutMs, whereabouts: () => scripts.whereabouts() }, (fence) => {
      lifecycle.fence(fence);
      void lifecycle.recover();
    }));
    const cleaner = (this.#cleaner = new Cleaner({
      scripts,
      cleanupChunkSize,
      cleanerId: () => lifecycle.processId,
      leaseHolds: () => lifecycle.leaseHolds,
      announce: (transition) => this.events.announce(transition),
    }));
    this.#recovery = new Recovery({ storeId: this.id, leaseTimeoutMs, scripts, queue, cleaner, local: this.#local, slots: this.#slots, ledger: this.#ledger, lifecycle, events: this.events });
    this.#heartbeat = new Heartbeat({ heartbeatMs, leaseTimeoutMs, scripts, queue, cleaner, lifecycle, error: (error) => this.events.error(error) });
    this.#heartbeat.start();
    void lifecycle.recover();
  }

  get limits(): Readonly<PresenceLimits> {
    return this.#local.limits;
  }

  /** The process id this store currently writes under (changes after a fence). */
  get processId(): string | undefined {
    return this.#lifecycle.processId;
  }

  /** Where the store is in its lifecycle on Redis (see lifecycle.ts). */
  get phase(): Phase {
    return this.#lifecycle.phase;
  }

  /** Whether the bucket is live with nothing queued, in flight or in doubt. */
  get idle(): boolean {
    return this.#lifecycle.phase === "live" && this.#queue.idle;
  }

  /** The slot that names one of this process's open connections in Redis (slots.ts). */
  slotOf(connectionId: string): number | undefined {
    return this.#slots.of(connectionId);
  }

  /** The user of one of this process's open connections in this bucket. */
  userOf(connectionId: string): string | undefined {
    return this.#local.userOf(connectionId);
  }

  async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    this.assertOpen();
    const repeat = this.#local.userOf(connectionId) !== undefined;
    this.#local.connect(connectionId, userId, info); // checks the input and the owner first
    if (repeat && info === undefined) return false; // a repeat brings nothing to send
    const json = info === undefined ? "" : serializeUserInfo(info, this.limits.maxUserInfoBytes);
    return this.#write({ kind: "connect", connectionId, slot: this.#slots.take(connectionId), userId, info: json, repeat });
  }

  async disconnect(connectionId: string): Promise<boolean> {
    this.assertOpen();
    const rooms = this.#local.roomsOf(connectionId);
    const { userId } = this.#local.disconnect(connectionId);
    const slot = this.#slots.close(connectionId);
    if (userId === undefined || slot === undefined) return false;
    // the rooms it leaves are announced as they are decided, before the disconnect resolves
    for (const room of rooms) this.#write({ kind: "leave", connectionId, slot, userId, room }).catch(() => {});
    return this.#write({ kind: "disconnect", connectionId, slot, userId });
  }

  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    this.assertOpen();
    this.#local.updateInfo(userId, info); // checks the input; kept locally while the user is online here
    return this.#write({ kind: "update", userId, info: serializeUserInfo(info, this.limits.maxUserInfoBytes) });
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    this.assertOpen();
    const json = await this.#scripts.command<string | null>("HGET info", ["HGET", this.keys.info, userId]);
    return json === null || json === undefined ? undefined : parseUserInfo(json);
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    this.assertOpen();
    const member = this.#local.roomsOf(connectionId).includes(room);
    this.#local.join(connectionId, room); // checks the room; ignores an unknown connection
    const userId = this.#local.userOf(connectionId);
    const slot = this.#slots.of(connectionId);
    if (userId === undefined || slot === undefined || member) return false;
    return this.#write({ kind: "join", connectionId, slot, userId, room });
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    this.assertOpen();
    const member = this.#local.roomsOf(connectionId).includes(room);
    this.#local.leave(connectionId, room); // checks the room
    const userId = this.#local.userOf(connectionId);
    const slot = this.#slots.of(connectionId);
    if (userId === undefined || slot === undefined || !member) return false;
    return this.#write({ kind: "leave", connectionId, slot, userId, room });
  }

  async isUserConnected(userId: string): Promise<boolean> {
    this.assertOpen();
    assertUserId(userId, this.limits.maxUserIdBytes);
    return (await this.#scripts.command<number>("HEXISTS", ["HEXISTS", this.keys.users, userId])) === 1;
  }

  async usersCount(): Promise<number> {
    this.assertOpen();
    return this.#scripts.command<number>("HLEN", ["HLEN", this.keys.users]);
  }

  /** Read in one script with the bucket's version counter: each state is as of that version (states.lua). */
  async userStates(userIds: readonly string[]): Promise<UserState[]> {
    this.assertOpen();
    assertUserIds(userIds, this.limits.maxUserIdBytes);
    if (userIds.length === 0) return [];
    const { version, users } = await this.#scripts.states(userIds);
    return userIds.map((userId, i) => {
      const { online, info } = users[i]!;
      if (!online) return { userId, online, version };
      return info === null ? { userId, online, version } : { userId, online, info: parseUserInfo(info), version };
    });
  }

  async usersList(): Promise<string[]> {
    const users: string[] = [];
    for await (const page of this.users({ pageSize: 1000 })) for (const { userId } of page) users.push(userId);
    return users;
  }

  /** Online users in pages, streamed with HSCAN: never one giant reply. */
  users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.assertOpen();
    return this.#scan(this.keys.users, options.pageSize);
  }

  async isUserInRoom(userId: string, room: string): Promise<boolean> {
    this.assertOpen();
    return (await this.#scripts.command<number>("HEXISTS", ["HEXISTS", this.keys.room(room), userId])) === 1;
  }

  async roomUsersCount(room: string): Promise<number> {
    this.assertOpen();
    return this.#scripts.command<number>("HLEN", ["HLEN", this.keys.room(room)]);
  }

  /** A room's users in pages, streamed with HSCAN of that room's hash alone. */
  roomUsers(room: string, options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.assertOpen();
    return this.#scan(this.keys.room(room), options.pageSize);
  }

  /**
   * Resolves once the store is live and nothing it was asked to write is
   * queued, in flight or in doubt: every outcome is known and announced.
   * Waits as long as Redis is away; bound it yourself.
   */
  async settled(): Promise<void> {
    while (!this.closed && !(this.#lifecycle.phase === "live" && this.#queue.idle)) await sleep(10);
  }

  /**
   * Says goodbye: sends what is queued, then, when another process is alive,
   * leaves this process's connections to the survivors after `leaveGraceMs`
   * (a rolling deploy is silent); otherwise (or with a grace of 0) removes
   * them at once, announcing the room leaves and offline users this causes.
   */
  protected async shutdown(): Promise<void> {
    this.#heartbeat.stop();
    const phase = this.#lifecycle.close();
    try {
      await this.#lifecycle.running;
      if (phase === "live") {
        await this.#heartbeat.renew().catch(() => {}); // the lease fresh for the goodbye, the outbox drained
        const deadline = Date.now() + this.#options.commandTimeoutMs;
        while (!this.#queue.idle && Date.now() < deadline) {
          if (this.#queue.inDoubt()) await this.#queue.settle();
          await this.#queue.drained();
          await sleep(5);
        }
      }
      this.#queue.hold();
      await this.#recovery.cleanRetired(false);
      const processId = this.#lifecycle.processId;
      const graced = processId !== undefined && phase === "live" && this.#options.leaveGraceMs > 0 && (await this.#scripts.retireAfter(processId, this.#options.leaveGraceMs));
      if (processId !== undefined && !graced) {
        // the goodbye: this store cleans itself, announcing from its own outbox
        await this.#cleaner.clean(processId, "retire", this.#cleaner.announcedThrough);
        await this.#scripts.forget([processId]);
      }
      // graced: its lease ends after the grace and a survivor cleans it up, announcing once what is left
    } catch (error) {
      this.events.error(error);
    } finally {
      this.#queue.close(new StoreClosedError());
      this.#local.clear();
      this.#slots.clear();
      this.#lifecycle.closed();
    }
  }

  // -- writes --

  /** Queues an operation; its transition, if Redis decides one, is announced before the returned promise resolves. */
  #write(operation: Operation): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#queue.push({
        operation,
        queuedAt: Date.now(),
        deliver: (outcome, processId, late, recorded) => {
          this.#ledger.note(processId, operation, outcome);
          // applied: no operation in the queue names the slot any more
          if (operation.kind === "disconnect") this.#slots.release(operation.slot);
          if (outcome.type === "conflict") {
            // unreachable while this process's connections in Redis follow its own writes: keep them apart
            const { connectionId, userId } = operation as Extract<Operation, { connectionId: string }>;
            debug("connection %s is counted for another user under %s", connectionId, processId);
            if (operation.kind === "connect" && this.#local.userOf(connectionId) === userId) {
              this.#local.disconnect(connectionId);
              this.#slots.close(connectionId); // not released: Redis counts another user there
            }
            if (!late) reject(new ConnectionConflictError(connectionId, userId, "(another user)"));
            return;
          }
          if (outcome.type === "transition" && !outcome.taken) this.events.announce(transitionOf(operation, outcome.version, outcome.info));
          if (!late) void recorded.then(() => resolve(outcome.type === "transition"));
        },
        fail: reject,
        drop: () => resolve(false), // never called: a caller's operation is kept through a fence
      });
    });
  }

  // -- reads --

  /** Pages of a users hash (all users, or one room's), with each user's info. */
  async *#scan(key: string, pageSize = 100): AsyncIterable<UserPresence[]> {
    const count = Math.max(1, pageSize);
    const seen = new Set<string>(); // HSCAN may return an entry twice while the hash resizes
    let cursor = "0";
    do {
      const [next, entries] = await this.#scripts.command<[string, string[]]>("HSCAN", ["HSCAN", key, cursor, "COUNT", String(count)]);
      cursor = String(next);
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
}
