import {
  LocalPresence,
  StoreClosedError,
  StoreEvents,
  assertUserId,
  inPages,
  type ErrorListener,
  type PresenceLimits,
  type PresenceStore,
  type TransitionListener,
  type UserInfo,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";

/** Options of {@link MemoryStore}: the input limits, with the defaults documented on `PresenceLimits`. */
export type MemoryStoreOptions = Partial<PresenceLimits>;

/**
 * Presence for one process: the classic standalone recipe's Map, made exact
 * and idempotent by core's `LocalPresence`, with rooms and user info.
 * Transitions are exact because this process sees every connection.
 */
export class MemoryStore implements PresenceStore {
  readonly #local: LocalPresence;
  readonly #events = new StoreEvents();
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#local = new LocalPresence(options);
  }

  get limits(): Readonly<PresenceLimits> {
    return this.#local.limits;
  }

  async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    return this.#open().connect(connectionId, userId, info);
  }

  async disconnect(connectionId: string): Promise<boolean> {
    const { offline, left } = this.#open().disconnect(connectionId);
    for (const transition of left) this.#events.announce(transition);
    return offline;
  }

  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    return this.#open().updateInfo(userId, info);
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    return this.#open().info(userId);
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    return this.#open().join(connectionId, room);
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    return this.#open().leave(connectionId, room);
  }

  async isUserInRoom(userId: string, room: string): Promise<boolean> {
    return this.#open().isInRoom(userId, room);
  }

  async roomUsersCount(room: string): Promise<number> {
    return this.#open().roomUsersCount(room);
  }

  async *roomUsers(room: string, options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    yield* inPages(this.#open().roomUsers(room), options.pageSize);
  }

  async isUserConnected(userId: string): Promise<boolean> {
    const local = this.#open();
    assertUserId(userId, local.limits.maxUserIdBytes);
    return local.isOnline(userId);
  }

  async usersCount(): Promise<number> {
    return this.#open().usersCount;
  }

  async usersList(): Promise<string[]> {
    return this.#open().userIds();
  }

  async *users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    yield* inPages(this.#open().users(), options.pageSize);
  }

  onTransition(listener: TransitionListener): () => void {
    return this.#events.onTransition(listener);
  }

  onError(listener: ErrorListener): () => void {
    return this.#events.onError(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const transition of this.#local.clear()) this.#events.announce(transition);
    this.#events.clear();
  }

  #open(): LocalPresence {
    if (this.#closed) throw new StoreClosedError();
    return this.#local;
  }
}

/** Factory form, in the style of Socket.IO's `createAdapter()`. */
export function createMemoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
