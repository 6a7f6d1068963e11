import type { Socket } from "socket.io-client";
import {
  DIFF,
  RESYNC,
  STATE,
  SUBSCRIBE,
  UNSUBSCRIBE,
  scopeKey,
  type DiffEntry,
  type DiffFrame,
  type ResyncFrame,
  type StateEntry,
  type StateFrame,
  type SubscribeReply,
  type SyncErrorReason,
  type SyncScope,
  type UserInfo,
} from "./protocol";

/** Which presence a client holds: a room's, a list of users', the count alone, or (none of these) every online user's. */
export interface PresenceClientOptions {
  /** Follow this room's users (the server may refuse a room the socket is not in). */
  room?: string;
  /** Follow these users only (at most the server's `maxUserIds`, 500 by default). */
  userIds?: string[];
  /** Follow the number of online users only: `count` is kept, `list()` stays empty. */
  countOnly?: boolean;
  /**
   * How long to wait, in ms, for the server to answer a subscribe before asking again.
   * @default 30000
   */
  timeoutMs?: number;
}

/** One online user, with their info when they have any. */
export interface PresenceUser {
  userId: string;
  info: UserInfo | undefined;
}

/** A subscribe the server refused (`code` from `@presence/core`'s codes, `reason` from the protocol). */
export class PresenceClientError extends Error {
  constructor(
    readonly code: string,
    readonly reason: SyncErrorReason | "timeout",
    message: string,
  ) {
    super(message);
    this.name = "PresenceClientError";
  }
}

export interface PresenceClientEvents {
  /** The view changed as a whole: a state was applied, or a diff. */
  sync: [];
  join: [user: PresenceUser];
  leave: [userId: string];
  update: [user: PresenceUser];
  /** A subscribe was refused or went unanswered (it is retried when retrying can help). */
  error: [error: PresenceClientError];
}

export interface PresenceClient {
  /** The users in view, in no particular order. */
  list(): PresenceUser[];
  get(userId: string): PresenceUser | undefined;
  /** How many users are in view (for `countOnly`, the online count). */
  readonly count: number;
  /** Whether a state has been applied since the last (re)subscribe. */
  readonly synced: boolean;
  on<E extends keyof PresenceClientEvents>(event: E, listener: (...args: PresenceClientEvents[E]) => void): () => void;
  /** Reads the state again. */
  resync(): void;
  /** Unsubscribes and stops listening to the socket. */
  close(): void;
}

/** Reordered diffs older than this (ms) behind the newest are no longer guarded against; their bookkeeping is dropped. */
const REORDER_WINDOW_MS = 60_000;

/**
 * Holds a scope's presence on a Socket.IO socket: subscribes (again on every
 * reconnect), applies the state, then the diffs.
 *
 * ```ts
 * const online = createPresenceClient(socket);
 * online.on("sync", () => render(online.list()));
 * ```
 */
export function createPresenceClient(socket: Socket, options: PresenceClientOptions = {}): PresenceClient {
  const scope: SyncScope =
    options.room !== undefined
      ? { type: "room", room: options.room }
      : options.userIds
        ? { type: "users", userIds: [...options.userIds] }
        : options.countOnly
          ? { type: "count" }
          : { type: "all" };
  const key = scopeKey(scope);
  const wanted = scope.type === "users" ? new Set(scope.userIds) : undefined;
  type Listener = (...args: unknown[]) => void;
  const listeners = new Map<string, Set<Listener>>();
  let users = new Map<string, UserInfo | undefined>();
  /** When the last change applied to each user was decided: a change older than that arrived late and is dropped. */
  let decided = new Map<string, number>();
  /** The state's version; diffs decided before it are already in it. */
  let version = -1;
  let newest = 0;
  let count = 0;
  let request = 0;
  /** The pages of the state being read; undefined once it is applied. */
  let pages: StateEntry[] | undefined;
  /** Diffs that arrived before the state. */
  let buffered: DiffFrame[] = [];
  /** The last frame number seen per node and key: a gap means a frame was lost on the way. */
  let seqs = new Map<string, number>();
  let retry: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  const fire = <E extends keyof PresenceClientEvents>(event: E, ...args: PresenceClientEvents[E]) => {
    for (const listener of listeners.get(event) ?? []) listener(...args);
  };
  const user = (userId: string): PresenceUser => ({ userId, info: users.get(userId) });
  const differ = (a: unknown, b: unknown) => JSON.stringify(a) !== JSON.stringify(b);

  const fail = (error: PresenceClientError, again: boolean) => {
    fire("error", error);
    if (again && !closed) retry = setTimeout(subscribe, 1000 + Math.random() * 1000);
  };

  function subscribe(): void {
    clearTimeout(retry);
    if (closed || !socket.connected) return;
    const number = ++request;
    pages = [];
    buffered = [];
    seqs = new Map();
    socket.timeout(options.timeoutMs ?? 30_000).emit(SUBSCRIBE, { scope, request: number }, (timedOut: Error | null, reply: SubscribeReply) => {
      if (closed || number !== request) return;
      if (timedOut) return fail(new PresenceClientError("TIMEOUT", "timeout", "the server did not answer the subscribe"), true);
      if (!reply.ok) fail(new PresenceClientError(reply.error.code, reply.error.reason, reply.error.message), reply.error.reason === "unavailable");
    });
  }

  function onState(frame: StateFrame): void {
    if (frame.key !== key || frame.requests[socket.id ?? ""] !== request || !pages) return;
    pages.push(...(frame.users ?? []));
    if (!frame.done) return;
    const previous = users;
    users = new Map(pages.map(([userId, info]) => [userId, info]));
    pages = undefined;
    version = frame.version;
    decided = new Map();
    if (frame.count !== undefined) count = frame.count;
    for (const [userId, info] of users) {
      if (!previous.has(userId)) fire("join", user(userId));
      else if (differ(previous.get(userId), info)) fire("update", user(userId));
    }
    for (const userId of previous.keys()) if (!users.has(userId)) fire("leave", userId);
    for (const diff of buffered.splice(0)) apply(diff);
    fire("sync");
  }

  /** Applies one user's change unless it is outside the scope or older than what is known. */
  function change(kind: "join" | "leave" | "update", at: number, [userId, , info]: DiffEntry): void {
    if (at < version || (decided.get(userId) ?? -1) > at || (wanted && !wanted.has(userId))) return;
    const had = users.has(userId);
    if (kind === "update" && !had) return;
    decided.set(userId, at);
    if (kind === "leave") {
      if (users.delete(userId)) fire("leave", userId);
    } else if (!had || differ(users.get(userId), info)) {
      users.set(userId, info);
      fire(had ? "update" : "join", user(userId));
    }
  }

  function apply(frame: DiffFrame): void {
    if (frame.count !== undefined) {
      // an absolute count: the newest read wins
      if (frame.version >= version) [version, count] = [frame.version, frame.count];
      return;
    }
    for (const kind of ["leave", "join", "update"] as const) {
      for (const entry of frame[`${kind}s`] ?? []) change(kind, frame.version - entry[1], entry);
    }
    newest = Math.max(newest, frame.version);
    if (decided.size > 2 * users.size + 1000) {
      for (const [userId, at] of decided) if (at < newest - REORDER_WINDOW_MS) decided.delete(userId);
    }
  }

  function onDiff(frame: DiffFrame): void {
    const ours =
      frame.key === key || (scope.type === "users" && frame.key === "all") || (scope.type === "room" && frame.key === "rooms");
    if (!ours || closed) return;
    if (frame.seq !== undefined && scope.type !== "users") {
      const id = `${frame.node} ${frame.key}`;
      const last = seqs.get(id);
      seqs.set(id, frame.seq);
      // a lost frame (an adapter dropped it, a node restarted): the view may be wrong, read the state again
      if (last !== undefined && frame.seq !== last + 1) return subscribe();
    }
    if (pages) return void buffered.push(frame);
    apply(frame);
    fire("sync");
  }

  function onResync(frame: ResyncFrame = {}): void {
    if (frame.key === undefined || frame.key === key) subscribe();
  }

  socket.on(STATE, onState);
  socket.on(DIFF, onDiff);
  socket.on(RESYNC, onResync);
  // a reconnect is a new socket on the server: subscribe again and read the state again
  socket.on("connect", subscribe);
  subscribe();

  return {
    list: () => [...users.keys()].map(user),
    get: (userId) => (users.has(userId) ? user(userId) : undefined),
    get count() {
      return scope.type === "count" ? count : users.size;
    },
    get synced() {
      return version >= 0 && !pages;
    },
    on(event, listener) {
      const set = listeners.get(event) ?? new Set();
      listeners.set(event, set);
      set.add(listener as Listener);
      return () => void set.delete(listener as Listener);
    },
    resync: subscribe,
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(retry);
      socket.off(STATE, onState);
      socket.off(DIFF, onDiff);
      socket.off(RESYNC, onResync);
      socket.off("connect", subscribe);
      if (socket.connected) socket.emit(UNSUBSCRIBE, { scope }, () => {});
    },
  };
}
