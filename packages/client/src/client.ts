import type { PresenceErrorCode } from "@presence/core";
import {
  DIFF,
  PROTOCOL_VERSION,
  RESYNC,
  STATE,
  UNSUBSCRIBE,
  UPDATE,
  scopeKey,
  unpackDiff,
  unpackState,
  type ProtocolUserInfo,
  type ResyncFrame,
  type StateEntry,
  type SubscribeReply,
  type SyncErrorReason,
  type SyncScope,
} from "@presence/core/protocol";
import type { Socket } from "socket.io-client";
import { sendSubscribe } from "./subscribes";
import { applyDiff, applyState, emptyView, forgetVersions, type ViewResult } from "./view";

/** What a user shows others: a plain JSON object. */
export type UserInfo = ProtocolUserInfo;

/** Which presence a client holds: a room's, a list of users', the count alone, or (none of these) every online user's. */
export interface PresenceClientOptions {
  /** Follow this room's users (the server may refuse a room the socket is not in). Not with `userIds` or `countOnly`. */
  room?: string;
  /** Follow these users only (at most the server's `maxUserIds`, 500 by default). Not with `room` or `countOnly`. */
  userIds?: readonly string[];
  /** Follow the number of online users only: `count` is kept, `list()` stays empty. Not with `room` or `userIds`. */
  countOnly?: boolean;
  /**
   * How long to wait, in ms, for the server to answer a subscribe or an update.
   * @default 30000
   */
  timeoutMs?: number;
  /**
   * The first delay, in ms, before asking again after a refusal that may pass
   * (`unavailable`, `rate-limited`) or no answer; it doubles on each try, with jitter.
   * @default 1000
   */
  retryDelayMs?: number;
  /**
   * The longest delay between two tries, in ms.
   * @default 30000
   */
  maxRetryDelayMs?: number;
}

/** One online user, with their info when they have any. */
export interface PresenceUser<Info extends object = UserInfo> {
  readonly userId: string;
  readonly info: Info | undefined;
}

/**
 * Where a client is (as centrifuge-js's subscription states):
 * - `"subscribing"`: asking the server (or waiting for the socket to connect, or for a retry), reading the state;
 * - `"subscribed"`: the state is applied and the diffs follow (`synced` is true);
 * - `"unsubscribed"`: not following: the server refused for good (see the `error` event), or the socket is
 *   disconnected and will not reconnect by itself; the next connect or `resync()` subscribes again;
 * - `"closed"`: after `close()`, for good.
 */
export type PresenceClientState = "unsubscribed" | "subscribing" | "subscribed" | "closed";

/** The codes of {@link PresenceClientError}: the server's (`@presence/core`'s codes), or the client's own. */
export type PresenceClientErrorCode = PresenceErrorCode | "TIMEOUT" | "DISCONNECTED" | "CLIENT_CLOSED";

/** Why: the server's reason (the protocol's), or the client's own. */
export type PresenceClientErrorReason = SyncErrorReason | "timeout" | "disconnected" | "closed" | "invalid-option";

/** A refused or unanswered request, or options that cannot go together: switch on `code` or `reason`. */
export class PresenceClientError extends Error {
  constructor(
    readonly code: PresenceClientErrorCode,
    readonly reason: PresenceClientErrorReason,
    message: string,
  ) {
    super(message);
    this.name = "PresenceClientError";
  }
}

export interface PresenceClientEvents<Info extends object = UserInfo> {
  /** The view changed (users, their info, or the count): after every state or diff that changed something. */
  sync: [];
  join: [user: PresenceUser<Info>];
  leave: [userId: string];
  update: [user: PresenceUser<Info>];
  /** The client's state changed. */
  state: [state: PresenceClientState, previous: PresenceClientState];
  /** A subscribe was refused or went unanswered (retried when retrying can help: `unavailable`, `rate-limited`, `timeout`). */
  error: [error: PresenceClientError];
}

export interface PresenceClient<Info extends object = UserInfo> {
  /** The users in view, in no particular order: the same array until the view changes. */
  list(): readonly PresenceUser<Info>[];
  get(userId: string): PresenceUser<Info> | undefined;
  /** How many users are in view (for `countOnly`, the online count). */
  readonly count: number;
  /** Whether the state has been read since the last (re)subscribe: `state === "subscribed"`. */
  readonly synced: boolean;
  readonly state: PresenceClientState;
  on<E extends keyof PresenceClientEvents<Info>>(event: E, listener: (...args: PresenceClientEvents<Info>[E]) => void): () => void;
  /** Reads the state again. */
  resync(): void;
  /** Sets the info of this socket's user (the server checks it and may refuse it: the promise rejects with the error). */
  update(info: Info): Promise<void>;
  /** Unsubscribes and stops listening to the socket. */
  close(): void;
}

/**
 * The last request number of each socket, shared by every client on it: a
 * state frame names the one client it answers. Kept on `globalThis` under a
 * registered symbol so that two copies of this package in one page (ESM and
 * CommonJS, or two versions) still number one socket's requests together.
 */
const REQUESTS = Symbol.for("@presence/client:requests");
const requests: WeakMap<Socket, number> = ((globalThis as { [REQUESTS]?: WeakMap<Socket, number> })[REQUESTS] ??= new WeakMap());
const nextRequest = (socket: Socket) => {
  const number = (requests.get(socket) ?? 0) + 1;
  requests.set(socket, number);
  return number;
};

/** Reasons worth asking again for: the moment was wrong, not the request. */
const RETRIED = new Set<PresenceClientErrorReason>(["unavailable", "rate-limited", "timeout"]);

const invalid = (message: string) => new PresenceClientError("INVALID_OPTION", "invalid-option", message);

/** The scope the options ask for; options that cannot go together throw. */
function toScope(options: PresenceClientOptions): SyncScope {
  const { room, userIds, countOnly } = options;
  const given = [room !== undefined, userIds !== undefined, !!countOnly].filter(Boolean).length;
  if (given > 1) throw invalid("room, userIds and countOnly are exclusive: give one of them at most");
  if (room !== undefined) {
    if (typeof room !== "string" || room === "") throw invalid("room must be a non-empty string");
    return { type: "room", room };
  }
  if (userIds !== undefined) {
    if (!Array.isArray(userIds) || !userIds.every((id) => typeof id === "string" && id !== "")) {
      throw invalid("userIds must be an array of non-empty strings");
    }
    return { type: "users", userIds: [...userIds] };
  }
  return countOnly ? { type: "count" } : { type: "all" };
}

/**
 * Holds a scope's presence on a Socket.IO socket: subscribes (again on every
 * reconnect), reads the state, applies the diffs.
 *
 * ```ts
 * const online = createPresenceClient<{ name: string }>(socket);
 * online.on("sync", () => render(online.list()));
 * ```
 */
export function createPresenceClient<Info extends object = UserInfo>(
  socket: Socket,
  options: PresenceClientOptions = {},
): PresenceClient<Info> {
  const scope = toScope(options);
  const { timeoutMs = 30_000, retryDelayMs = 1000, maxRetryDelayMs = 30_000 } = options;
  for (const [name, value] of Object.entries({ timeoutMs, retryDelayMs, maxRetryDelayMs })) {
    if (!(value > 0)) throw invalid(`${name} must be a positive number of ms`);
  }
  const key = scopeKey(scope);
  type Listener = (...args: unknown[]) => void;
  const listeners = new Map<string, Set<Listener>>();
  let view = emptyView<Info>();
  /** The users as `list()` and `get()` give them: each object kept until that user changes. */
  const shown = new Map<string, PresenceUser<Info>>();
  let listed: readonly PresenceUser<Info>[] | undefined = [];
  let state: PresenceClientState = "unsubscribed";
  /** This client's current request: only the state frames that answer it are read. */
  let request = 0;
  /** The pages of the state being read; undefined when none is. */
  let pages: StateEntry[] | undefined;
  let tries = 0;
  let retry: ReturnType<typeof setTimeout> | undefined;
  /** Withdraws the last subscribe if it is still waiting for the end of the turn. */
  let withdraw = () => {};
  /** How many subscribes of this client went out: once one has, the server may hold its scope. */
  let sends = 0;

  const fire = <E extends keyof PresenceClientEvents<Info>>(event: E, ...args: PresenceClientEvents<Info>[E]) => {
    for (const listener of listeners.get(event) ?? []) listener(...args);
  };

  function setState(next: PresenceClientState): void {
    const previous = state;
    if (next === previous) return;
    state = next;
    fire("state", next, previous);
  }

  /** Takes the next view, then tells the listeners what changed. */
  function settle(result: ViewResult<Info>, then?: PresenceClientState): void {
    view = result.view;
    for (const change of result.changes) {
      if (change.type === "leave") shown.delete(change.userId);
      else if (change.type !== "count") shown.set(change.userId, { userId: change.userId, info: change.info });
    }
    if (result.changes.length > 0) listed = undefined;
    // a state's joins and leaves fire before `synced` turns true: a listener can tell the fill-in from live changes
    for (const change of result.changes) {
      if (change.type === "leave") fire("leave", change.userId);
      else if (change.type !== "count") fire(change.type, shown.get(change.userId)!);
    }
    if (then) setState(then);
    if (result.changes.length > 0) fire("sync");
  }

  const fail = (error: PresenceClientError) => {
    const again = RETRIED.has(error.reason);
    setState(again ? "subscribing" : "unsubscribed");
    if (again) {
      // exponential backoff with jitter, so that many clients refused at once do not come back at once
      const delay = Math.min(maxRetryDelayMs, retryDelayMs * 2 ** tries++) * (0.5 + Math.random() / 2);
      retry = setTimeout(subscribe, delay);
    }
    fire("error", error);
  };

  function subscribe(): void {
    clearTimeout(retry);
    withdraw(); // a subscribe of this client still waiting for the end of the turn is replaced, not sent too
    pages = undefined;
    if (state === "closed") return;
    if (!socket.connected) return setState(socket.active ? "subscribing" : "unsubscribed");
    const number = (request = nextRequest(socket));
    pages = [];
    setState("subscribing");
    // sent at the end of the turn, with the other subscribes of this socket's views made in it
    withdraw = sendSubscribe(socket, timeoutMs, {
      scope,
      request: number,
      sent: () => void sends++,
      answer(timedOut, reply) {
        // a late ack of a request whose state was read already changes nothing
        if (state === "closed" || number !== request || (timedOut && state === "subscribed")) return;
        if (timedOut || typeof reply !== "object" || reply === null) fail(new PresenceClientError("TIMEOUT", "timeout", `the server did not answer the subscribe within ${timeoutMs} ms`));
        else if (!reply.ok) fail(new PresenceClientError(reply.error.code as PresenceErrorCode, reply.error.reason, reply.error.message));
        else if (reply.state) onState(reply.state); // a small state's last page comes in the ack
      },
    });
  }

  function onState(packed: unknown): void {
    const frame = unpackState(packed);
    if (!frame || frame.key !== key || frame.request !== request || !pages) return;
    pages.push(...(frame.users ?? []));
    if (!frame.done) return;
    const entries = pages;
    pages = undefined;
    tries = 0;
    settle(applyState(view, entries, frame.version, frame.count), "subscribed");
  }

  function onDiff(frames: unknown): void {
    // diffs that come while the state is read are applied at once: the state's versions settle the order
    if (!Array.isArray(frames)) return;
    for (const packed of frames) {
      // a frame of another scope is not unpacked
      if (!Array.isArray(packed) || packed[0] !== key) continue;
      const frame = unpackDiff(packed);
      if (frame) settle(applyDiff(view, frame, scope));
    }
  }

  function onResync(frame: ResyncFrame = {}): void {
    if (frame.key === undefined || frame.key === key) subscribe();
  }

  function onConnect(): void {
    // maybe another server process, or a store that started again: no version held so far means anything now
    view = forgetVersions(view);
    tries = 0;
    subscribe();
  }

  function onDisconnect(): void {
    clearTimeout(retry);
    pages = undefined;
    setState(socket.active ? "subscribing" : "unsubscribed");
  }

  const handlers = { [STATE]: onState, [DIFF]: onDiff, [RESYNC]: onResync, connect: onConnect, disconnect: onDisconnect };
  for (const [event, handler] of Object.entries(handlers)) socket.on(event, handler as (...args: unknown[]) => void);
  subscribe();

  return {
    list: () => (listed ??= [...shown.values()]),
    get: (userId) => shown.get(userId),
    get count() {
      return scope.type === "count" ? view.count : shown.size;
    },
    get synced() {
      return state === "subscribed";
    },
    get state() {
      return state;
    },
    on(event, listener) {
      const set = listeners.get(event) ?? new Set();
      listeners.set(event, set);
      set.add(listener as Listener);
      return () => void set.delete(listener as Listener);
    },
    resync: subscribe,
    update(info) {
      if (state === "closed") return Promise.reject(new PresenceClientError("CLIENT_CLOSED", "closed", "update() after close()"));
      if (!socket.connected) return Promise.reject(new PresenceClientError("DISCONNECTED", "disconnected", "the socket is not connected"));
      return new Promise((resolve, reject) => {
        socket.timeout(timeoutMs).emit(UPDATE, { v: PROTOCOL_VERSION, info }, (timedOut: Error | null, reply: SubscribeReply) => {
          if (timedOut) reject(new PresenceClientError("TIMEOUT", "timeout", `the server did not answer the update within ${timeoutMs} ms`));
          else if (reply.ok) resolve();
          else reject(new PresenceClientError(reply.error.code as PresenceErrorCode, reply.error.reason, reply.error.message));
        });
      });
    },
    close() {
      if (state === "closed") return;
      clearTimeout(retry);
      for (const [event, handler] of Object.entries(handlers)) socket.off(event, handler as (...args: unknown[]) => void);
      // a subscribe not sent yet is withdrawn; the server is told only if one of this client's went out
      withdraw();
      if (sends > 0 && socket.connected) socket.emit(UNSUBSCRIBE, { v: PROTOCOL_VERSION, scope, request }, () => {});
      setState("closed");
    },
  };
}
