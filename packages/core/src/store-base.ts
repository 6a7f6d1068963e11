import { StoreClosedError } from "./errors";
import { assertUserId, assertUserIds } from "./ids";
import type { LocalPresence, PresenceLimits } from "./local-presence";
import {
  StoreEvents,
  inPages,
  type ErrorListener,
  type PresenceStore,
  type Transition,
  type TransitionListener,
  type UserInfo,
  type UserPresence,
  type UserState,
  type UsersPageOptions,
} from "./store";

/**
 * What every store shares, written once: the listeners, the closed guard and
 * a close that runs once. A store extends it and supplies `shutdown()`.
 */
export abstract class StoreBase {
  protected readonly events = new StoreEvents();
  #closing: Promise<void> | undefined;

  /** Whether `close()` was called: calls from then on reject with `StoreClosedError`. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  onTransition(listener: TransitionListener): () => void {
    return this.events.onTransition(listener);
  }

  onError(listener: ErrorListener): () => void {
    return this.events.onError(listener);
  }

  /** Runs `shutdown()` once, however often it is called; the listeners hear what it announces, then nothing. */
  close(): Promise<void> {
    this.#closing ??= this.shutdown().finally(() => this.events.clear());
    return this.#closing;
  }

  /** Throws `StoreClosedError` once `close()` was called. */
  protected assertOpen(): void {
    if (this.#closing) throw new StoreClosedError();
  }

  /** Announces transitions in order; true when there was one of `type`. */
  protected announce(transitions: Transition[], type?: Transition["type"]): boolean {
    for (const transition of transitions) this.events.announce(transition);
    return type !== undefined && transitions.some((transition) => transition.type === type);
  }

  /** Releases the store's resources, announcing what its leaving changes. */
  protected abstract shutdown(): Promise<void>;
}

/**
 * A store whose truth is one `LocalPresence` in this process: it decides
 * every transition itself, announces it and answers every read from it.
 * `MemoryStore` is this class; a distributed store overrides what is
 * distributed about it.
 */
export class LocalStore extends StoreBase implements PresenceStore {
  protected readonly local: LocalPresence;

  constructor(local: LocalPresence) {
    super();
    this.local = local;
  }

  get limits(): Readonly<PresenceLimits> {
    return this.local.limits;
  }

  async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    return this.announce(this.#open().connect(connectionId, userId, info), "connected");
  }

  async disconnect(connectionId: string): Promise<boolean> {
    return this.announce(this.#open().disconnect(connectionId).transitions, "disconnected");
  }

  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    return this.announce(this.#open().updateInfo(userId, info), "updated");
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    return this.#open().info(userId);
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    return this.announce(this.#open().join(connectionId, room), "joined");
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    return this.announce(this.#open().leave(connectionId, room), "left");
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

  async userStates(userIds: readonly string[]): Promise<UserState[]> {
    const local = this.#open();
    assertUserIds(userIds, local.limits.maxUserIdBytes);
    return userIds.map((userId) => local.state(userId));
  }

  /** Removes every connection, announcing the room leaves and offline transitions. */
  protected async shutdown(): Promise<void> {
    this.announce(this.local.clear());
  }

  #open(): LocalPresence {
    this.assertOpen();
    return this.local;
  }
}
