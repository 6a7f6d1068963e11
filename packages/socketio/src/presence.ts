import { EventEmitter } from "node:events";
import {
  ConnectionConflictError,
  DEFAULT_MAX_USER_ID_BYTES,
  InvalidUserIdError,
  PresenceError,
  StoreClosedError,
  assertUserId,
  type PresenceStore,
  type Transition,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";
import createDebug from "debug";
import type { Namespace, Server, Socket } from "socket.io";

const debug = createDebug("presence:socketio");

/** Returns the user id of a socket, from something the server can trust. */
export type IdentifyHook = (socket: Socket) => string | null | undefined | Promise<string | null | undefined>;

export interface PresenceEventNames {
  /** @default "user has connected" */
  connected: string;
  /** @default "user has disconnected" */
  disconnected: string;
}

export interface PresenceOptions {
  /** Where presence is kept: `MemoryStore`, `RedisStore`, the cluster-query store, or your own. */
  store: PresenceStore;
  /**
   * Returns the user id of a socket, sync or async: from a verified token, a
   * session or a cookie. Throwing, returning nothing or returning an invalid
   * id refuses the connection with a `connect_error`.
   */
  identify: IdentifyHook;
  /**
   * Names of the events sent to every client of the namespace on a
   * transition, or `false` to send none (the server-side events still fire).
   * @default { connected: "user has connected", disconnected: "user has disconnected" }
   */
  events?: Partial<PresenceEventNames> | false;
  /**
   * How long, in ms, a user whose last connection dropped stays online. A
   * reconnect inside the window, on any node, produces neither a leave nor a join.
   * @default 0
   */
  leaveDelayMs?: number;
  /**
   * The longest accepted user id, in UTF-8 bytes.
   * @default 256
   */
  maxUserIdBytes?: number;
  /**
   * The `connect_error` message sent to a refused client.
   * @default "unauthorized"
   */
  unauthorizedMessage?: string;
  /**
   * Attempts per store call before giving up and emitting `error` (store
   * calls are idempotent, so retrying them is safe).
   * @default 3
   */
  retries?: number;
  /**
   * Delay before the first retry, in ms; doubled on each further attempt.
   * @default 100
   */
  retryDelayMs?: number;
}

export interface PresenceEvents {
  /** A user went offline -> online. */
  connected: [userId: string];
  /** A user went online -> offline. */
  disconnected: [userId: string];
  /** A store call failed for good, or the store reported a background error. */
  error: [error: Error];
}

/** Why a connection was refused; sent as `err.data.reason` with the `connect_error`. */
export type RefusalReason = "identify-failed" | "no-user-id" | "invalid-user-id";

const DEFAULT_EVENT_NAMES: PresenceEventNames = {
  connected: "user has connected",
  disconnected: "user has disconnected",
};

/** Errors that retrying cannot fix: bad input and a closed store. */
const isPermanent = (error: unknown) =>
  error instanceof InvalidUserIdError ||
  error instanceof ConnectionConflictError ||
  error instanceof StoreClosedError;

/**
 * Presence for one Socket.IO namespace: identifies each socket's user, counts
 * its connections in the store, and emits transitions to every client.
 */
export class Presence extends EventEmitter<PresenceEvents> {
  readonly namespace: Namespace;
  readonly store: PresenceStore;

  readonly #identify: IdentifyHook;
  readonly #eventNames: PresenceEventNames | false;
  readonly #leaveDelayMs: number;
  readonly #maxUserIdBytes: number;
  readonly #unauthorizedMessage: string;
  readonly #retries: number;
  readonly #retryDelayMs: number;

  readonly #userIds = new WeakMap<Socket, string>();
  /** The tail of each counted socket's queue of store calls: calls for one socket run in order. */
  readonly #queues = new Map<string, Promise<void>>();
  /** Disconnects waiting out the leave grace, by socket id. */
  readonly #pendingLeaves = new Map<string, { timer: NodeJS.Timeout; leave: () => void }>();
  readonly #unsubscribe: Array<() => void> = [];
  #closing: Promise<void> | undefined;

  constructor(namespace: Namespace, options: PresenceOptions) {
    super();
    if (!options?.store) throw new TypeError("createPresence: the `store` option is required");
    if (typeof options.identify !== "function") {
      throw new TypeError("createPresence: the `identify` option must be a function");
    }
    this.namespace = namespace;
    this.store = options.store;
    this.#identify = options.identify;
    this.#eventNames = options.events === false ? false : { ...DEFAULT_EVENT_NAMES, ...options.events };
    this.#leaveDelayMs = Math.max(0, options.leaveDelayMs ?? 0);
    this.#maxUserIdBytes = options.maxUserIdBytes ?? DEFAULT_MAX_USER_ID_BYTES;
    this.#unauthorizedMessage = options.unauthorizedMessage ?? "unauthorized";
    this.#retries = Math.max(1, options.retries ?? 3);
    this.#retryDelayMs = options.retryDelayMs ?? 100;

    this.#unsubscribe.push(
      this.store.onTransition((transition) => this.#announce(transition)),
      this.store.onError((error) => this.#fail(error)),
    );
    namespace.use((socket, next) => {
      this.#authenticate(socket).then(
        () => next(),
        (error: Error) => next(error),
      );
    });
    namespace.on("connection", (socket) => this.#onConnection(socket));
  }

  /** The user id the `identify` hook gave this socket, once it connected. */
  userIdOf(socket: Socket): string | undefined {
    return this.#userIds.get(socket);
  }

  async isUserConnected(userId: string): Promise<boolean> {
    assertUserId(userId, this.#maxUserIdBytes);
    return this.store.isUserConnected(userId);
  }

  usersCount(): Promise<number> {
    return this.store.usersCount();
  }

  usersList(): Promise<string[]> {
    return this.store.usersList();
  }

  /** Online users in pages, for long lists. */
  users(options?: UsersPageOptions): AsyncIterable<UserPresence[]> {
    return this.store.users(options);
  }

  /**
   * Stops counting, applies the leaves still waiting out their grace, removes
   * this server's connections from the store (closing it) and emits the
   * leaves this causes. Sockets stay open; close the server for that.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const { timer, leave } of this.#pendingLeaves.values()) {
      clearTimeout(timer);
      leave();
    }
    await Promise.allSettled(this.#queues.values());
    try {
      await this.store.close();
    } catch (error) {
      this.#fail(error);
    }
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
  }

  async #authenticate(socket: Socket): Promise<void> {
    if (this.#closing) return; // not counted, not refused: presence is shutting down
    let userId: unknown;
    try {
      userId = await this.#identify(socket);
    } catch (error) {
      debug("identify threw for socket %s: %O", socket.id, error);
      throw this.#refusal("identify-failed");
    }
    if (userId === undefined || userId === null) throw this.#refusal("no-user-id");
    try {
      assertUserId(userId, this.#maxUserIdBytes);
    } catch (error) {
      debug("identify gave an invalid user id for socket %s: %s", socket.id, (error as Error).message);
      throw this.#refusal("invalid-user-id");
    }
    this.#userIds.set(socket, userId);
  }

  #refusal(reason: RefusalReason): Error {
    return Object.assign(new Error(this.#unauthorizedMessage), { data: { reason } });
  }

  #onConnection(socket: Socket): void {
    const userId = this.#userIds.get(socket);
    if (userId === undefined || this.#closing) return;
    const connectionId = socket.id;

    // attached before any await: a socket that leaves while its connect is in
    // flight is still counted down, after the connect, in order
    socket.once("disconnect", () => {
      if (this.#leaveDelayMs === 0 || this.#closing) {
        this.#leave(connectionId, userId);
        return;
      }
      const leave = () => {
        this.#pendingLeaves.delete(connectionId);
        this.#leave(connectionId, userId);
      };
      const timer = setTimeout(leave, this.#leaveDelayMs);
      this.#pendingLeaves.set(connectionId, { timer, leave });
    });

    this.#enqueue(connectionId, async () => {
      if (await this.#call("connect", () => this.store.connect(connectionId, userId))) {
        this.#announce({ type: "connected", userId });
      }
    });
  }

  #leave(connectionId: string, userId: string): void {
    this.#enqueue(
      connectionId,
      async () => {
        if (await this.#call("disconnect", () => this.store.disconnect(connectionId))) {
          this.#announce({ type: "disconnected", userId });
        }
      },
      true,
    );
  }

  #enqueue(connectionId: string, task: () => Promise<void>, last = false): void {
    const previous = this.#queues.get(connectionId) ?? Promise.resolve();
    const next = previous.then(task).catch((error) => this.#fail(error));
    this.#queues.set(connectionId, next);
    if (last) {
      void next.finally(() => {
        if (this.#queues.get(connectionId) === next) this.#queues.delete(connectionId);
      });
    }
  }

  /** Runs a store call, retrying what retrying can fix. */
  async #call<T>(name: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (isPermanent(error) || attempt >= this.#retries) throw error;
        debug("store %s failed (attempt %d of %d), retrying: %s", name, attempt, this.#retries, (error as Error).message);
        await new Promise((resolve) => setTimeout(resolve, this.#retryDelayMs * 2 ** (attempt - 1)));
      }
    }
  }

  #announce({ type, userId }: Transition): void {
    debug("user %s %s", userId, type);
    if (this.#eventNames) this.namespace.emit(this.#eventNames[type], userId);
    this.emit(type, userId);
  }

  #fail(error: unknown): void {
    const err = error instanceof Error ? error : new PresenceError("UNKNOWN", String(error));
    debug("error: %O", err);
    // an EventEmitter throws on an unheard "error": only emit it when someone listens
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }
}

/**
 * Presence for a Socket.IO server (its main namespace) or one namespace.
 *
 * ```ts
 * const presence = createPresence(io, { store: new MemoryStore(), identify: (socket) => verify(socket.handshake.auth.token) });
 * ```
 */
export function createPresence(target: Server | Namespace, options: PresenceOptions): Presence {
  const namespace = "of" in target ? target.of("/") : target;
  return new Presence(namespace, options);
}
