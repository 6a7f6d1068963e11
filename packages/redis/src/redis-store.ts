import { randomUUID } from "node:crypto";
import {
  ConnectionConflictError,
  ConnectionCounter,
  DEFAULT_MAX_USER_ID_BYTES,
  StoreClosedError,
  StoreEvents,
  StoreUnavailableError,
  assertConnectionId,
  assertUserId,
  type ErrorListener,
  type PresenceStore,
  type Transition,
  type TransitionListener,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";
import createDebug from "debug";
import { Cluster, type Redis } from "ioredis";
import { presenceKeys, type PresenceKeys } from "./keys";
import { defineCommands, type PresenceCommands } from "./scripts";

const debug = createDebug("presence:redis");

export interface RedisStoreOptions {
  /**
   * An ioredis client (`Redis` or `Cluster`). The store works on its own
   * duplicate of it, so your client's settings and state are left alone.
   */
  redis: Redis | Cluster;
  /**
   * Every key of the deployment starts with `{prefix}:` (the braces are the
   * Redis Cluster hash tag). Stores that share a prefix form one deployment.
   * @default "presence"
   */
  prefix?: string;
  /**
   * How often this process renews its lease and looks for dead processes, in ms.
   * @default 5000
   */
  heartbeatMs?: number;
  /**
   * A process whose lease was not renewed for this long is dead: the others
   * remove its connections and announce the users this leaves offline.
   * @default 10000
   */
  leaseTimeoutMs?: number;
  /**
   * Connections removed per cleanup script call: bounds how long any one
   * call holds Redis when a process with many connections dies.
   * @default 500
   */
  cleanupChunkSize?: number;
  /**
   * Most operations sent in one script call; concurrent calls are coalesced
   * up to this size.
   * @default 1000
   */
  maxBatchSize?: number;
  /**
   * How long any call waits for Redis before failing with
   * `StoreUnavailableError`, in ms.
   * @default 5000
   */
  commandTimeoutMs?: number;
  /**
   * The longest accepted user id, in UTF-8 bytes.
   * @default 256
   */
  maxUserIdBytes?: number;
}

type Operation = {
  op: "c" | "d";
  connectionId: string;
  userId: string;
  resolve: (transition: boolean) => void;
  reject: (error: Error) => void;
  timer?: NodeJS.Timeout;
};

/** An operation whose outcome was lost with its reply: settled by the next recovery. */
type InDoubt = { op: "c" | "d"; connectionId: string; userId: string; processId: string; reported: boolean };

const isFenced = (error: unknown) => error instanceof Error && error.message.startsWith("FENCED");

const unavailable = (error: unknown) =>
  error instanceof StoreUnavailableError
    ? error
    : new StoreUnavailableError(`Redis did not answer: ${(error as Error)?.message ?? error}`, { cause: error });

/**
 * Exact all-users presence on Redis, for every process of every host that
 * shares one Redis (or Redis Cluster).
 *
 * Each process keeps the truth of its own open connections in memory and
 * projects it onto Redis with idempotent Lua scripts. A process holds a lease
 * it renews on every heartbeat; when it dies the others clean its connections
 * up in bounded chunks and announce the users this leaves offline, once. A
 * process that finds it was declared dead (paused past its lease, cut off, or
 * Redis restarted empty) takes a new identity and publishes its connections
 * again: presence converges to the connections that are really open.
 */
export class RedisStore implements PresenceStore {
  readonly keys: PresenceKeys;
  /** This store's identity as a cleaner: stable across its process ids. */
  readonly id = randomUUID();

  readonly #redis: (Redis | Cluster) & PresenceCommands;
  readonly #events = new StoreEvents();
  readonly #local = new ConnectionCounter();
  readonly #heartbeatMs: number;
  readonly #leaseTimeoutMs: number;
  readonly #cleanupChunkSize: number;
  readonly #maxBatchSize: number;
  readonly #commandTimeoutMs: number;
  readonly #maxUserIdBytes: number;

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
  #recovery: Promise<void> | undefined;
  #needsRecovery = true;
  #cleaning = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: RedisStoreOptions) {
    if (!options?.redis) throw new TypeError("RedisStore: the `redis` option (an ioredis client) is required");
    this.keys = presenceKeys(options.prefix ?? "presence");
    this.#heartbeatMs = options.heartbeatMs ?? 5000;
    this.#leaseTimeoutMs = options.leaseTimeoutMs ?? 10_000;
    this.#cleanupChunkSize = options.cleanupChunkSize ?? 500;
    this.#maxBatchSize = options.maxBatchSize ?? 1000;
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 5000;
    this.#maxUserIdBytes = options.maxUserIdBytes ?? DEFAULT_MAX_USER_ID_BYTES;
    if (this.#leaseTimeoutMs <= this.#heartbeatMs) {
      throw new TypeError("RedisStore: leaseTimeoutMs must be longer than heartbeatMs");
    }

    // A reply lost with its connection is never resent blindly: the store
    // reconciles instead (see #recover), so that every transition is known.
    const overrides = {
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.#commandTimeoutMs,
      connectionName: `presence:${this.id}`,
    };
    const client =
      options.redis instanceof Cluster
        ? options.redis.duplicate(undefined, {
            redisOptions: { ...options.redis.options.redisOptions, ...overrides },
          })
        : options.redis.duplicate(overrides);
    client.on("error", (error: Error) => debug("redis connection error: %s", error.message));
    this.#redis = defineCommands(client);

    this.#heartbeat = setInterval(() => void this.#tick(), this.#heartbeatMs).unref();
    void this.#recoverSafely();
  }

  /** The process id this store currently writes under (changes after a fence). */
  get processId(): string | undefined {
    return this.#processId;
  }

  async connect(connectionId: string, userId: string): Promise<boolean> {
    this.#assertOpen();
    assertConnectionId(connectionId);
    assertUserId(userId, this.#maxUserIdBytes);
    const owner = this.#local.userOf(connectionId);
    if (owner !== undefined) {
      if (owner !== userId) throw new ConnectionConflictError(connectionId, userId, owner);
      return false; // a repeat: nothing to send
    }
    this.#local.connect(connectionId, userId);
    return this.#enqueue("c", connectionId, userId);
  }

  async disconnect(connectionId: string): Promise<boolean> {
    this.#assertOpen();
    const userId = this.#local.userOf(connectionId);
    if (userId === undefined) return false;
    if (this.#local.disconnect(connectionId) !== undefined) this.#reported.delete(userId);
    return this.#enqueue("d", connectionId, userId);
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
  async *users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.#assertOpen();
    const count = Math.max(1, options.pageSize ?? 100);
    const seen = new Set<string>(); // HSCAN may return an entry twice while the hash resizes
    let cursor = "0";
    do {
      const [next, entries] = await this.#read(() => this.#redis.hscan(this.keys.users, cursor, "COUNT", count));
      cursor = next;
      const page: UserPresence[] = [];
      for (let i = 0; i + 1 < entries.length; i += 2) {
        const userId = entries[i]!;
        if (seen.has(userId)) continue;
        seen.add(userId);
        page.push({ userId, connections: Number(entries[i + 1]) });
      }
      if (page.length > 0) yield page;
    } while (cursor !== "0");
  }

  onTransition(listener: TransitionListener): () => void {
    return this.#events.onTransition(listener);
  }

  onError(listener: ErrorListener): () => void {
    return this.#events.onError(listener);
  }

  /**
   * Says goodbye: sends what is queued, removes this process's connections
   * at once (announcing the users this leaves offline) and closes the
   * store's Redis connection. Your own client is left open.
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
      this.#reported.clear();
      this.#events.clear();
      this.#redis.disconnect();
    }
  }

  // -- writes: queued, coalesced into batches, one script call per batch --

  #enqueue(op: "c" | "d", connectionId: string, userId: string): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const operation: Operation = { op, connectionId, userId, resolve, reject };
      // only held operations need a timer: a sent one is bounded by the command timeout
      operation.timer = setTimeout(() => this.#expire(operation), this.#commandTimeoutMs);
      this.#queue.push(operation);
      this.#scheduleFlush();
    });
  }

  /** A queued operation that waited too long for Redis: the next recovery republishes the truth. */
  #expire(operation: Operation): void {
    const index = this.#queue.indexOf(operation);
    if (index === -1) return;
    this.#queue.splice(index, 1);
    this.#needsRecovery = true;
    operation.reject(new StoreUnavailableError("Redis is unavailable: the operation waited too long"));
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
    if (this.#recovery || processId === undefined) return;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatchSize);
      for (const op of batch) clearTimeout(op.timer);
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
        // and announces the users it brings back.
        debug("process %s was fenced; recovering", processId);
        for (const op of batch) op.resolve(false);
      } else {
        // the batch may or may not have been applied: its transitions are settled by the recovery
        for (const { op, connectionId, userId } of batch) {
          this.#inDoubt.push({ op, connectionId, userId, processId, reported: this.#reported.has(userId) });
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
        op.reject(new ConnectionConflictError(op.connectionId, op.userId, "(unknown)"));
      } else {
        if (results[i] === 1) this.#noteReported({ type: op.op === "c" ? "connected" : "disconnected", userId: op.userId });
        op.resolve(results[i] === 1);
      }
    });
  }

  #apply(processId: string, operations: Array<Pick<Operation, "op" | "connectionId" | "userId">>): Promise<number[]> {
    const args: string[] = [processId, String(this.#leaseTimeoutMs)];
    for (const { op, connectionId, userId } of operations) args.push(op, connectionId, op === "c" ? userId : "");
    return this.#redis.presenceApply(this.keys.processes, this.keys.users, this.keys.connections(processId), ...args);
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
    return this.#redis.presenceHeartbeat(
      this.keys.processes,
      this.keys.cleanups,
      processId,
      String(this.#leaseTimeoutMs),
      mode,
      "16",
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
   * connection under it, removes what the old ids left in Redis, then settles
   * the operations whose replies were lost. Counting the new before removing
   * the old means users who stay online see no leave and no join.
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
      announced.add(`${transition.type}:${transition.userId}`);
      this.#announce(transition);
    };

    // connections whose connect is still queued are sent after the recovery and answer for themselves
    const queued = new Set(this.#queue.filter((op) => op.op === "c").map((op) => op.connectionId));
    const connections = [...this.#local.connections()].filter(([connectionId]) => !queued.has(connectionId));
    for (let i = 0; i < connections.length; i += this.#maxBatchSize) {
      const chunk = connections
        .slice(i, i + this.#maxBatchSize)
        .map(([connectionId, userId]) => ({ op: "c" as const, connectionId, userId }));
      const results = await this.#apply(processId, chunk);
      chunk.forEach(({ userId }, j) => results[j] === 1 && announce({ type: "connected", userId }));
    }

    const inDoubt = this.#inDoubt;
    this.#inDoubt = [];
    // a disconnect whose connection is still recorded under the old id was not
    // applied: the cleanup below removes it and announces the leave
    const unsettled: InDoubt[] = [];
    for (const entry of inDoubt) {
      if (entry.op === "d" && (await this.#redis.hexists(this.keys.connections(entry.processId), entry.connectionId))) continue;
      unsettled.push(entry);
    }
    await this.#cleanRetired(announce);

    // what is left: the lost reply may have been a transition nobody reported
    for (const { op, userId, reported } of unsettled) {
      const type = op === "c" ? "connected" : "disconnected";
      if (announced.has(`${type}:${userId}`)) continue;
      const online = (await this.#redis.hexists(this.keys.users, userId)) === 1;
      if (op === "c" && online && !reported && !this.#reported.has(userId) && this.#local.isOnline(userId)) {
        announce({ type, userId });
      } else if (op === "d" && !online && !this.#local.isOnline(userId)) {
        announce({ type, userId });
      }
    }
  }

  /** Keeps #reported in step with what this store told its listeners and callers. */
  #noteReported({ type, userId }: Transition): void {
    if (type === "connected" && this.#local.isOnline(userId)) this.#reported.add(userId);
    else if (type === "disconnected") this.#reported.delete(userId);
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

  /** Removes a dead process chunk by chunk; resolves with the last status. */
  async #cleanProcess(
    processId: string,
    mode: "expired" | "force",
    announce = (t: Transition) => this.#announce(t),
  ): Promise<string> {
    for (;;) {
      const [status, ...offline] = await this.#redis.presenceCleanup(
        this.keys.processes,
        this.keys.cleanups,
        this.keys.users,
        this.keys.connections(processId),
        processId,
        this.id,
        String(this.#leaseTimeoutMs),
        String(this.#cleanupChunkSize),
        mode,
      );
      for (const userId of offline) announce({ type: "disconnected", userId });
      if (status !== "more") {
        if (status === "done") debug("cleaned up process %s", processId);
        return status!;
      }
      mode = "expired"; // claimed now: later chunks carry on under the claim
    }
  }

  // -- reads --

  async #read<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
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
