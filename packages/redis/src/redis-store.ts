import { randomUUID } from "node:crypto";
import {
  ConnectionConflictError,
  StoreBase,
  assertUserId,
  assertUserIds,
  type PresenceLimits,
  type PresenceStore,
  type UserInfo,
  type UserPresence,
  type UserState,
  type UsersPageOptions,
} from "@presence/core";
import { Bucket } from "./bucket";
import { assertRedisClient, connect, isReplyError, type Connection } from "./client";
import { BucketLayoutError, DataLayoutError } from "./errors";
import { DATA_LAYOUT, bucketOf, bucketTags, layoutValue, parseLayout, presenceKeys, type PresenceKeys } from "./keys";
import type { Phase } from "./lifecycle";
import { resolveOptions, type RedisStoreOptions, type ResolvedOptions } from "./options";

/**
 * Exact all-users presence on Redis, for every process of every host that
 * shares one Redis (or Redis Cluster), with rooms and user info.
 *
 * The users are spread over `buckets` (bucket.ts): a user always lands in
 * the same one, and each bucket is a whole store of its own under its own
 * hash tag (leases, numbered batches, outbox, fencing, versions), so every
 * decision about a user is one script in one slot and exactly-once holds
 * per bucket with nothing shared between them. This class only routes: a
 * connection goes to its user's bucket, reads of a user go to one bucket,
 * counts are the sum of one read per bucket, sent together, and lists walk
 * the buckets in turn. The transitions of every bucket reach `onTransition`
 * with versions that order each user's changes (a user's versions all come
 * from one bucket's counter); versions of users in different buckets are
 * not comparable.
 */
export class RedisStore extends StoreBase implements PresenceStore {
  /** This store's identity (its connection's name in `CLIENT LIST` is `presence:<id>`). */
  readonly id = randomUUID();
  readonly #options: ResolvedOptions;
  readonly #connection: Connection;
  readonly #buckets: readonly Bucket[];
  /** Settled once Redis said which layout the deployment uses; a mismatch refuses connects, joins and info updates. */
  #layout: BucketLayoutError | DataLayoutError | "checked" | "unknown" | Promise<void>;

  constructor(options: RedisStoreOptions) {
    super();
    this.#options = resolveOptions(options);
    assertRedisClient(this.#options.redis);
    const { prefix, buckets, commandTimeoutMs } = this.#options;
    this.#connection = connect(this.#options.redis, commandTimeoutMs, `presence:${this.id}`);
    this.#buckets = bucketTags(prefix, buckets).map((tag) => new Bucket(this.#options, this.#connection, presenceKeys(tag)));
    for (const bucket of this.#buckets) {
      bucket.onTransition((transition) => this.events.announce(transition));
      bucket.onError((error) => this.events.error(error));
    }
    this.#layout = this.#checkLayout();
  }

  /** The keys of the first bucket (of the only one, by default). */
  get keys(): PresenceKeys {
    return this.#buckets[0]!.keys;
  }

  /** The keys of every bucket, in bucket order. */
  get bucketKeys(): PresenceKeys[] {
    return this.#buckets.map((bucket) => bucket.keys);
  }

  /** The process id this store writes under in the first bucket (changes after a fence). */
  get processId(): string | undefined {
    return this.#buckets[0]!.processId;
  }

  /** Where the store is on Redis: `live` once every bucket is, else the first bucket's phase that is not. */
  get phase(): Phase {
    return this.#buckets.find((bucket) => bucket.phase !== "live")?.phase ?? "live";
  }

  get limits(): Readonly<PresenceLimits> {
    return this.#buckets[0]!.limits;
  }

  async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    this.assertOpen();
    this.#assertLayout();
    assertUserId(userId, this.limits.maxUserIdBytes);
    const bucket = this.#bucketOf(userId);
    if (this.#buckets.length > 1) {
      const other = this.#holder(connectionId);
      if (other !== undefined && other !== bucket) throw new ConnectionConflictError(connectionId, userId, other.userOf(connectionId)!);
    }
    return bucket.connect(connectionId, userId, info);
  }

  /**
   * The slot that names one of this process's open connections in Redis:
   * field `slot % 128` of page `floor(slot / 128)` of its slots (the
   * README's data layout). For tools and tests; undefined when this process
   * does not hold the connection open.
   */
  slotOf(connectionId: string): number | undefined {
    return this.#holder(connectionId)?.slotOf(connectionId);
  }

  async disconnect(connectionId: string): Promise<boolean> {
    this.assertOpen();
    return (this.#holder(connectionId) ?? this.#buckets[0]!).disconnect(connectionId);
  }

  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    this.assertOpen();
    this.#assertLayout();
    assertUserId(userId, this.limits.maxUserIdBytes);
    return this.#bucketOf(userId).updateInfo(userId, info);
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    this.assertOpen();
    assertUserId(userId, this.limits.maxUserIdBytes);
    return this.#bucketOf(userId).userInfo(userId);
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    this.assertOpen();
    this.#assertLayout();
    return (this.#holder(connectionId) ?? this.#buckets[0]!).join(connectionId, room);
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    this.assertOpen();
    return (this.#holder(connectionId) ?? this.#buckets[0]!).leave(connectionId, room);
  }

  async isUserConnected(userId: string): Promise<boolean> {
    this.assertOpen();
    assertUserId(userId, this.limits.maxUserIdBytes);
    return this.#bucketOf(userId).isUserConnected(userId);
  }

  async isUserInRoom(userId: string, room: string): Promise<boolean> {
    this.assertOpen();
    assertUserId(userId, this.limits.maxUserIdBytes);
    return this.#bucketOf(userId).isUserInRoom(userId, room);
  }

  /** Each bucket's users read at once, each bucket in one script: a state is as of its bucket's version. */
  async userStates(userIds: readonly string[]): Promise<UserState[]> {
    this.assertOpen();
    assertUserIds(userIds, this.limits.maxUserIdBytes);
    const byBucket = new Map<Bucket, string[]>();
    for (const userId of userIds) {
      const bucket = this.#bucketOf(userId);
      const ids = byBucket.get(bucket);
      if (ids) ids.push(userId);
      else byBucket.set(bucket, [userId]);
    }
    const states = new Map<string, UserState>();
    await Promise.all([...byBucket].map(async ([bucket, ids]) => (await bucket.userStates(ids)).forEach((state) => states.set(state.userId, state))));
    return userIds.map((userId) => states.get(userId)!);
  }

  /** One HLEN per bucket, all sent at once (pipelined on each master's connection): never a scan. */
  async usersCount(): Promise<number> {
    this.assertOpen();
    return sum(await Promise.all(this.#buckets.map((bucket) => bucket.usersCount())));
  }

  async roomUsersCount(room: string): Promise<number> {
    this.assertOpen();
    return sum(await Promise.all(this.#buckets.map((bucket) => bucket.roomUsersCount(room))));
  }

  async usersList(): Promise<string[]> {
    this.assertOpen();
    return (await Promise.all(this.#buckets.map((bucket) => bucket.usersList()))).flat();
  }

  /** Online users in pages: each bucket's, streamed with HSCAN, one bucket after the other (a user is in one bucket only). */
  users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.assertOpen();
    return this.#concat((bucket) => bucket.users(options));
  }

  /** A room's users in pages: each bucket's share of the room in turn. */
  roomUsers(room: string, options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.assertOpen();
    return this.#concat((bucket) => bucket.roomUsers(room, options));
  }

  /** Resolves once every bucket is live with nothing queued, in flight or in doubt, all at once. Waits as long as Redis is away. */
  async settled(): Promise<void> {
    while (!this.closed) {
      await Promise.all(this.#buckets.map((bucket) => bucket.settled()));
      if (this.#buckets.every((bucket) => bucket.idle)) return;
    }
  }

  /** Every bucket says goodbye at once (see `Bucket`), then the shared connection closes. */
  protected async shutdown(): Promise<void> {
    try {
      await Promise.all(this.#buckets.map((bucket) => bucket.close()));
    } finally {
      this.#connection.close();
    }
  }

  #bucketOf(userId: string): Bucket {
    return this.#buckets[bucketOf(userId, this.#buckets.length)]!;
  }

  /** The bucket where this process holds the connection open, if any. */
  #holder(connectionId: string): Bucket | undefined {
    if (this.#buckets.length === 1) return this.#buckets[0];
    return this.#buckets.find((bucket) => bucket.userOf(connectionId) !== undefined);
  }

  async *#concat(pagesOf: (bucket: Bucket) => AsyncIterable<UserPresence[]>): AsyncIterable<UserPresence[]> {
    for (const bucket of this.#buckets) yield* pagesOf(bucket);
  }

  // -- the layout guard --

  /**
   * `{prefix}:layout` holds the deployment's number of buckets and its data
   * layout (keys.ts), set by its first store. A store with another number
   * would write where the others never read, and one of another layout
   * could not clean up after them: it refuses every connect, join and info update, saying why
   * (disconnects and leaves still go ahead, undoing what it wrote). Until
   * Redis answers, writes go ahead (their keys are this store's to clean
   * either way).
   */
  async #checkLayout(): Promise<void> {
    const key = `{${this.#options.prefix}}:layout`;
    const expected = this.#options.buckets;
    const value = layoutValue(expected);
    const send = (args: string[]) => this.#connection.send(args) as Promise<string | null>;
    try {
      // one step: sets the value if there is none yet, and says what was there (Redis 6.2 refuses NX with GET: two steps)
      const found = await send(["SET", key, value, "NX", "GET"]).catch(async (error: unknown) => {
        if (!isReplyError(error)) throw error;
        await send(["SET", key, value, "NX"]);
        return (await send(["GET", key])) ?? value;
      });
      const layout = found === null ? { buckets: expected, layout: DATA_LAYOUT } : parseLayout(String(found));
      if (layout?.buckets === expected && layout.layout === DATA_LAYOUT) this.#layout = "checked";
      else {
        this.#layout = layout?.buckets === expected ? new DataLayoutError(DATA_LAYOUT, layout.layout) : new BucketLayoutError(expected, layout?.buckets ?? Number.NaN);
        this.events.error(this.#layout);
      }
    } catch {
      this.#layout = "unknown"; // Redis away: asked again by the next write
    }
  }

  #assertLayout(): void {
    if (this.#layout instanceof BucketLayoutError || this.#layout instanceof DataLayoutError) throw this.#layout;
    if (this.#layout === "unknown") this.#layout = this.#checkLayout();
  }
}

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

/** Factory form, in the style of Socket.IO's `createAdapter()`. */
export function createRedisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}
