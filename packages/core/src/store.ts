/** A user going offline -> online ("connected") or online -> offline ("disconnected"). */
export interface Transition {
  type: "connected" | "disconnected";
  userId: string;
}

/** One online user, as listed by {@link PresenceStore.users}. */
export interface UserPresence {
  userId: string;
  /** Open connections of this user across the deployment, as far as the store knows. */
  connections: number;
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
 * disconnect). A store keeps the semantics documented in DESIGN.md: repeats
 * are idempotent, counts never go negative, no offline user stays listed.
 */
export interface PresenceStore {
  /**
   * Counts a connection for a user. Resolves `true` when this made the user
   * go offline -> online across the whole deployment.
   */
  connect(connectionId: string, userId: string): Promise<boolean>;
  /**
   * Uncounts a connection. Resolves `true` when this made its user go
   * online -> offline across the whole deployment. Unknown connections are ignored.
   */
  disconnect(connectionId: string): Promise<boolean>;
  isUserConnected(userId: string): Promise<boolean>;
  usersCount(): Promise<number>;
  /** Every online user id. Prefer {@link users} for long lists. */
  usersList(): Promise<string[]>;
  /** Online users in pages, without ever building one giant reply. */
  users(options?: UsersPageOptions): AsyncIterable<UserPresence[]>;
  /**
   * Transitions the store observed on its own, not as the answer to a call:
   * a crashed process cleaned up, connections republished after a fence,
   * this store's connections removed by `close()`. Returns an unsubscribe function.
   */
  onTransition(listener: TransitionListener): () => void;
  /** Errors the store met in the background (heartbeats, cleanup). Returns an unsubscribe function. */
  onError(listener: ErrorListener): () => void;
  /**
   * Removes this store's connections (announcing the offline transitions
   * this causes through `onTransition`) and releases its resources. Calls
   * after `close()` reject with `StoreClosedError`.
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
    const err = error instanceof Error ? error : new Error(String(error));
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
