import type { Namespace, Socket } from "socket.io";

/** The per-socket bounds of the sync protocol: what one socket may make the server hold or do. */
export interface SocketBounds {
  /**
   * The most scopes one socket may follow at once (all, count, a user list, each room).
   * @default 16
   */
  maxSubscriptions: number;
  /**
   * The most state reads one socket may have in flight; a subscribe beyond them is refused (`rate-limited`).
   * @default 2
   */
  maxStateReads: number;
  /**
   * Requests (subscribe, unsubscribe, update) one socket may send in a burst;
   * they come back at `requestsPerSecond`. One beyond is refused (`rate-limited`).
   * @default 20
   */
  requestBurst: number;
  /**
   * How fast a socket's request allowance refills.
   * @default 2
   */
  requestsPerSecond: number;
  /**
   * Bytes waiting in a socket's output (Engine.IO's write buffer) past
   * which the socket reads too slowly to keep: it is disconnected, so that
   * server memory per slow reader stays bounded whatever it follows. The
   * default holds a storm's worth of events and a large state with room to
   * spare.
   * @default 1048576
   */
  maxBufferedBytes: number;
}

export const DEFAULT_SOCKET_BOUNDS: SocketBounds = {
  maxSubscriptions: 16,
  maxStateReads: 2,
  requestBurst: 20,
  requestsPerSecond: 2,
  maxBufferedBytes: 1024 * 1024,
};

/** What the guard keeps per socket. */
interface SocketState {
  tokens: number;
  refilledAt: number;
  reads: number;
  /** The tail of the socket's requests: they apply in the order it sent them. */
  tail: Promise<unknown>;
}

/** Bytes an Engine.IO connection holds for a socket that has not taken them yet (its write buffer's packets). */
export function bufferedBytes(socket: Socket): number {
  const conn = socket.conn as unknown as { writeBuffer?: Array<{ data?: unknown }> };
  if (!Array.isArray(conn.writeBuffer)) return 0;
  let bytes = 0;
  for (const { data } of conn.writeBuffer) {
    // a string's length is a lower bound of its UTF-8 bytes: cheap, and what a flood fills is ASCII JSON
    bytes += typeof data === "string" ? data.length : data instanceof Uint8Array ? data.byteLength : 1;
  }
  return bytes;
}

/** Disconnects a socket whose output backs up past `maxBytes` (a slow reader); true when it did. */
export function dropIfSlow(socket: Socket, maxBytes: number): boolean {
  if (bufferedBytes(socket) <= maxBytes) return false;
  socket.disconnect(true);
  return true;
}

/** The local sockets in a Socket.IO room. */
export function* socketsIn(namespace: Namespace, room: string): Generator<Socket> {
  for (const socketId of namespace.adapter.rooms.get(room) ?? []) {
    const socket = namespace.sockets.get(socketId);
    if (socket) yield socket;
  }
}

/**
 * Enforces {@link SocketBounds} for each socket: a token bucket on its
 * requests, a cap on its state reads in flight, and one queue per socket so
 * that its subscribes and unsubscribes apply in the order it sent them.
 */
export class SocketGuard {
  readonly bounds: Readonly<SocketBounds>;
  readonly #sockets = new WeakMap<Socket, SocketState>();

  constructor(bounds: SocketBounds) {
    this.bounds = bounds;
  }

  /** Takes `cost` requests from the socket's allowance, all or none; false when it has not that many left. */
  admit(socket: Socket, cost = 1, now = Date.now()): boolean {
    const state = this.#state(socket, now);
    state.tokens = Math.min(this.bounds.requestBurst, state.tokens + ((now - state.refilledAt) / 1000) * this.bounds.requestsPerSecond);
    state.refilledAt = now;
    if (state.tokens < cost) return false;
    state.tokens -= cost;
    return true;
  }

  /** Runs `task` after the socket's earlier requests. */
  inOrder<T>(socket: Socket, task: () => Promise<T>): Promise<T> {
    const state = this.#state(socket);
    const run = state.tail.then(task, task);
    state.tail = run.catch(() => {});
    return run;
  }

  /** Runs a state read, if the socket has fewer than `maxStateReads` in flight; undefined when it has not. */
  read<T>(socket: Socket, task: () => Promise<T>): Promise<T> | undefined {
    const state = this.#state(socket);
    if (state.reads >= this.bounds.maxStateReads) return undefined;
    state.reads++;
    return task().finally(() => state.reads--);
  }

  /** Disconnects a socket whose output backs up past `maxBufferedBytes`; true when it did. */
  dropIfSlow(socket: Socket): boolean {
    return dropIfSlow(socket, this.bounds.maxBufferedBytes);
  }

  #state(socket: Socket, now = Date.now()): SocketState {
    let state = this.#sockets.get(socket);
    if (!state) this.#sockets.set(socket, (state = { tokens: this.bounds.requestBurst, refilledAt: now, reads: 0, tail: Promise.resolve() }));
    return state;
  }
}
