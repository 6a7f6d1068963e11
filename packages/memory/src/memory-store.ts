import {
  ConnectionCounter,
  DEFAULT_MAX_USER_ID_BYTES,
  StoreClosedError,
  StoreEvents,
  assertConnectionId,
  assertUserId,
  type ErrorListener,
  type PresenceStore,
  type TransitionListener,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";

export interface MemoryStoreOptions {
  /**
   * The longest accepted user id, in UTF-8 bytes.
   * @default 256
   */
  maxUserIdBytes?: number;
}

/**
 * Presence for one process, on Maps: the classic standalone recipe, made
 * exact and idempotent by `ConnectionCounter`. Transitions are exact because
 * this process sees every connection.
 */
export class MemoryStore implements PresenceStore {
  readonly #counter = new ConnectionCounter();
  readonly #events = new StoreEvents();
  readonly #maxUserIdBytes: number;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxUserIdBytes = options.maxUserIdBytes ?? DEFAULT_MAX_USER_ID_BYTES;
  }

  /** The synchronous core of `connect`, for callers on the same process. */
  connectSync(connectionId: string, userId: string): boolean {
    this.#assertOpen();
    assertConnectionId(connectionId);
    assertUserId(userId, this.#maxUserIdBytes);
    return this.#counter.connect(connectionId, userId);
  }

  /** The synchronous core of `disconnect`. */
  disconnectSync(connectionId: string): boolean {
    this.#assertOpen();
    return this.#counter.disconnect(connectionId) !== undefined;
  }

  async connect(connectionId: string, userId: string): Promise<boolean> {
    return this.connectSync(connectionId, userId);
  }

  async disconnect(connectionId: string): Promise<boolean> {
    return this.disconnectSync(connectionId);
  }

  async isUserConnected(userId: string): Promise<boolean> {
    this.#assertOpen();
    return this.#counter.isOnline(userId);
  }

  async usersCount(): Promise<number> {
    this.#assertOpen();
    return this.#counter.usersCount;
  }

  async usersList(): Promise<string[]> {
    this.#assertOpen();
    return [...this.#counter.users()];
  }

  /** Connections per online user on this process, as a snapshot. */
  snapshot(): UserPresence[] {
    this.#assertOpen();
    return [...this.#counter.users()].map((userId) => ({
      userId,
      connections: this.#counter.connectionsOf(userId),
    }));
  }

  /** The user a counted connection belongs to. */
  userOf(connectionId: string): string | undefined {
    return this.#counter.userOf(connectionId);
  }

  /** Open connections of one user on this process. */
  connectionsOf(userId: string): number {
    return this.#counter.connectionsOf(userId);
  }

  async *users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    const pageSize = Math.max(1, options.pageSize ?? 100);
    const all = this.snapshot();
    for (let i = 0; i < all.length; i += pageSize) {
      yield all.slice(i, i + pageSize);
    }
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
    const users = [...this.#counter.users()];
    this.#counter.clear();
    for (const userId of users) this.#events.announce({ type: "disconnected", userId });
    this.#events.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }
}

/** Factory form, in the style of Socket.IO's `createAdapter()`. */
export function createMemoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
