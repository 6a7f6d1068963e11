import { toPresenceError } from "./errors";
import type { PresenceLimits } from "./local-presence";

/** What a user shows others while online (a name, an avatar URL, a status): a plain JSON object. */
export type UserInfo = { [key: string]: unknown };

/**
 * A change of state: a user going offline -> online ("connected") or
 * online -> offline ("disconnected"), entering or leaving a room, or their
 * info changing.
 *
 * `version` is the decider's order (see `VersionCounter`): of two
 * transitions of one user (or of one user in one room), the higher version
 * was decided later. Stores that decide in one place (memory, cluster,
 * Redis) always set it; a store with no single decider (cluster-query)
 * leaves it out, and views built on it are best effort.
 */
export type Transition =
  | { type: "connected"; userId: string; info?: UserInfo; version?: number }
  | { type: "disconnected"; userId: string; version?: number }
  | { type: "updated"; userId: string; info: UserInfo; version?: number }
  | { type: "joined"; room: string; userId: string; info?: UserInfo; version?: number }
  | { type: "left"; room: string; userId: string; version?: number };

/** One online user, as listed by {@link PresenceStore.users} and {@link PresenceStore.roomUsers}. */
export interface UserPresence {
  userId: string;
  /** Open connections of this user (in the room, for a room) across the deployment, as far as the store knows. */
  connections: number;
  /** The user's info, when they have any. */
  info?: UserInfo;
}

/**
 * One user's presence as read by {@link PresenceStore.userStates}, with the
 * version of the user's decider that the read is as of: every change of this
 * user versioned at most `version` is in it, and every change decided after
 * the read has a higher version. So a change that arrives later, versioned
 * at most this, is older than what was read.
 */
export interface UserState {
  userId: string;
  online: boolean;
  /** The user's info, when they are online with some. */
  info?: UserInfo;
  /** Left out by a store that does not version its changes (cluster-query). */
  version?: number;
}

export interface UsersPageOptions {
  /** A hint for how many users each page holds. @default 100 */
  pageSize?: number;
}

export type TransitionListener = (transition: Transition) => void;
export type ErrorListener = (error: Error) => void;

/**
 * What every store implements. The binding (`@presence/socketio`) only ever
 * talks to this interface, so it never knows which store it has.
 *
 * Calls for one connection are made in order by the caller (connect, then
 * disconnect). A store keeps the semantics documented in docs/design.md: repeats
 * are idempotent, counts never go negative, no offline user stays listed.
 *
 * Every transition the store decides is announced through `onTransition`,
 * once across the whole deployment, with its version: the ones a call made
 * (also when that call's caller timed out or died) and the ones the store
 * found on its own. A call's result only tells its caller what it did.
 */
export interface PresenceStore {
  /**
   * The input limits this store enforces. The binding reads them, so that it
   * never accepts a user the store would then refuse.
   */
  readonly limits?: Readonly<PresenceLimits>;
  /**
   * Counts a connection for a user, with the user's info if given (the
   * latest given wins; it is kept while the user is online). Resolves `true`
   * when this made the user go offline -> online across the whole deployment.
   */
  connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean>;
  /**
   * Uncounts a connection, and takes it out of every room it is still in
   * (announcing, through `onTransition`, the users this makes leave a room).
   * Resolves `true` when this made its user go online -> offline across the
   * whole deployment. Unknown connections are ignored.
   */
  disconnect(connectionId: string): Promise<boolean>;
  /** Replaces an online user's info. Resolves `false` (storing nothing) when the user is offline. */
  updateInfo(userId: string, info: UserInfo): Promise<boolean>;
  /** An online user's info; `undefined` when offline or without info. */
  userInfo(userId: string): Promise<UserInfo | undefined>;
  /**
   * Puts a counted connection in a room. Resolves `true` when this made its
   * user enter the room (their first connection in it). Unknown connections are ignored.
   */
  join(connectionId: string, room: string): Promise<boolean>;
  /** Takes a connection out of a room. Resolves `true` when its user left the room (their last connection in it). */
  leave(connectionId: string, room: string): Promise<boolean>;
  isUserInRoom(userId: string, room: string): Promise<boolean>;
  roomUsersCount(room: string): Promise<number>;
  /** A room's users in pages (with their info), touching no other room. */
  roomUsers(room: string, options?: UsersPageOptions): AsyncIterable<UserPresence[]>;
  isUserConnected(userId: string): Promise<boolean>;
  usersCount(): Promise<number>;
  /** Every online user id. Prefer {@link users} for long lists. */
  usersList(): Promise<string[]>;
  /** Online users in pages, without ever building one giant reply. */
  users(options?: UsersPageOptions): AsyncIterable<UserPresence[]>;
  /**
   * Whether each of these users is online, with their info and the version
   * the read is as of (see {@link UserState}), in the order given. The
   * binding corrects its per-user events with it after transitions were lost
   * on their way to a node. At most 1,000 users per call.
   */
  userStates(userIds: readonly string[]): Promise<UserState[]>;
  /**
   * Every transition this store decided (or, for a distributed store, was
   * handed to announce): those the calls made, a crashed process cleaned up,
   * connections republished after a fence, rooms left by a disconnect, this
   * store's connections removed by `close()`. Each is heard once across the
   * deployment, through one store. Returns an unsubscribe function.
   */
  onTransition(listener: TransitionListener): () => void;
  /** Errors the store met in the background (heartbeats, cleanup). Returns an unsubscribe function. */
  onError(listener: ErrorListener): () => void;
  /**
   * Removes this store's connections (announcing the room leaves and offline
   * transitions this causes through `onTransition`) and releases its
   * resources. Calls after `close()` reject with `StoreClosedError`.
   */
  close(): Promise<void>;
}

/**
 * The listener bookkeeping every store shares. A throwing listener never
 * breaks the store: its error goes to the error listeners (or is dropped
 * when there are none, rather than crashing the process).
 */
export class StoreEvents {
  readonly #transitionListeners = new Set<TransitionListener>();
  readonly #errorListeners = new Set<ErrorListener>();

  onTransition(listener: TransitionListener): () => void {
    this.#transitionListeners.add(listener);
    return () => this.#transitionListeners.delete(listener);
  }

  onError(listener: ErrorListener): () => void {
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  announce(transition: Transition): void {
    for (const listener of this.#transitionListeners) {
      try {
        listener(transition);
      } catch (error) {
        this.error(error);
      }
    }
  }

  error(error: unknown): void {
    const err = error instanceof Error ? error : toPresenceError(error);
    for (const listener of this.#errorListeners) {
      try {
        listener(err);
      } catch {
        // an error listener that throws has nowhere left to report to
      }
    }
  }

  clear(): void {
    this.#transitionListeners.clear();
    this.#errorListeners.clear();
  }
}

/** Splits a list into pages of `pageSize` (at least 1), for stores that hold their lists in memory. */
export function* inPages<T>(items: T[], pageSize = 100): Generator<T[]> {
  const size = Math.max(1, pageSize);
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
