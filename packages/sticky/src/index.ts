/**
 * Sticky sessions for Socket.IO in a Node cluster: the primary reads the first
 * bytes of each HTTP connection, picks the worker that owns its session (or
 * one by the load-balancing method) and hands the connection over.
 *
 * A fork of @socket.io/sticky 2.0.1 (MIT, Damien Arrachequesne), same API,
 * with the fixes of the handoff this project found under load (see README).
 */
import cluster, { type Worker } from "node:cluster";
import { randomBytes } from "node:crypto";
import type { Server as HttpServer } from "node:http";
import type { Socket as NetSocket } from "node:net";
import { Duplex } from "node:stream";
import createDebug from "debug";
import type { Server as SocketIoServer } from "socket.io";

const debug = createDebug("presence:sticky");

export type LoadBalancingMethod = "random" | "round-robin" | "least-connection";

export interface StickyOptions {
  /**
   * How the primary picks a worker for a connection that names no session (a
   * new session's handshake, a WebSocket-only client): the one with the fewest
   * open sessions, the next one in turn, or any.
   * @default "least-connection"
   */
  loadBalancingMethod?: LoadBalancingMethod;
}

/** A worker the application may mark `acceptingConnections = false` while it starts or stops. */
export type StickyWorker = Worker & { acceptingConnections?: boolean };

/** Thrown for a call in the wrong process or with options it cannot use. */
export class StickyError extends Error {
  override readonly name = "StickyError";
  constructor(
    readonly code: "NOT_PRIMARY" | "NOT_WORKER" | "INVALID_OPTIONS",
    message: string,
  ) {
    super(message);
  }
}

const LOAD_BALANCING_METHODS: readonly LoadBalancingMethod[] = ["random", "round-robin", "least-connection"];
const DEFAULT_OPTIONS: Required<StickyOptions> = { loadBalancingMethod: "least-connection" };

// A session id made by setupWorker() starts with its worker's id (4 base-36
// digits), then 16 random base64url characters: 20 in all, like engine.io's.
const WORKER_ID_DIGITS = 4;
const SESSION_ID = /sid=([\w-]{20})/;
/** Past this many, a worker's handoffs are swept of the completed ones before another is added. */
const HANDOFF_SWEEP_AT = 64;

/** A session id naming its worker (exported for the tests). */
export const sessionIdOf = (workerId: number): string =>
  workerId.toString(36).padStart(WORKER_ID_DIGITS, "0").slice(-WORKER_ID_DIGITS) + randomBytes(12).toString("base64url");

/** The worker a session id names, if it names one. */
export const workerIdOfSession = (sid: string): number | undefined => {
  const prefix = sid.slice(0, WORKER_ID_DIGITS);
  return /^[0-9a-z]{4}$/.test(prefix) ? parseInt(prefix, 36) : undefined;
};

const connectionIdOf = () => randomBytes(8).toString("hex");
const noop = () => {};

/**
 * A chunk as it crossed IPC: a Buffer with `serialization: "advanced"`, its
 * JSON form (`{ type: "Buffer", data: [...] }`) with the default serialization.
 */
function toBuffer(data: unknown): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === "object" && data !== null && Array.isArray((data as { data?: unknown }).data)) {
    return Buffer.from((data as { data: number[] }).data);
  }
  return Buffer.from(typeof data === "string" ? data : "");
}

/** What of a net.Socket the handoff touches beyond its public API. */
interface HandedSocket extends NetSocket {
  _handle?: { fd?: number; reading?: boolean; readStop?: () => void; close?: () => void } | null;
  _read: (size: number) => void;
}

interface Handoff {
  socket: HandedSocket;
  handle: HandedSocket["_handle"];
}

/**
 * Still queued, the socket keeps its handle; once sent, Node closes the
 * primary's copy of the handle on the worker's acknowledgement (fd < 0).
 */
const handoffDone = ({ socket, handle }: Handoff) => !socket._handle && !(handle && (handle.fd ?? -1) >= 0);

type PrimaryMessage =
  | { type: "sticky:connection"; data: string }
  | { type: "sticky:disconnection"; data: string }
  | { type: "sticky:http-response"; connectionId: string; data: unknown }
  | { type: "sticky:http-response-end"; connectionId: string }
  | { type: "sticky:http-response-destroy"; connectionId: string; error?: string };

type WorkerMessage =
  | { type: "sticky:connection"; data: unknown }
  | { type: "sticky:http-chunk-start"; data: unknown; connectionId: string; socketInfo: SocketInfo }
  | { type: "sticky:http-chunk"; data: unknown; connectionId: string }
  | { type: "sticky:abort"; connectionId: string };

interface SocketInfo {
  remoteAddress?: string;
  remotePort?: number;
  localAddress?: string;
  localPort?: number;
}

const isStickyMessage = (message: unknown): message is { type: string } =>
  typeof message === "object" && message !== null && typeof (message as { type?: unknown }).type === "string" && (message as { type: string }).type.startsWith("sticky:");

const workers = (): Map<number, StickyWorker> => {
  const found = new Map<number, StickyWorker>();
  for (const worker of Object.values(cluster.workers ?? {})) if (worker) found.set(worker.id, worker);
  return found;
};

/**
 * In the primary: routes every connection of `httpServer` to a worker, the
 * same worker for every request of one Engine.IO session. Call it before the
 * server listens; the workers call `setupWorker`.
 */
export function setupMaster(httpServer: HttpServer, opts?: StickyOptions): void {
  if (!cluster.isPrimary) throw new StickyError("NOT_PRIMARY", "setupMaster() runs in the cluster's primary process");
  const options: Required<StickyOptions> = { ...DEFAULT_OPTIONS, ...opts };
  if (!LOAD_BALANCING_METHODS.includes(options.loadBalancingMethod)) {
    throw new StickyError(
      "INVALID_OPTIONS",
      `loadBalancingMethod must be one of ${LOAD_BALANCING_METHODS.join(", ")}, got ${String(options.loadBalancingMethod)}`,
    );
  }
  debug("setting up primary with options %o", options);

  const sessionToWorker = new Map<string, number>();
  /** Open sessions per worker, for least-connection. */
  const sessionsOf = new Map<number, number>();
  /** Connections the primary keeps and relays chunk by chunk (requests with a body). */
  const relayed = new Map<string, NetSocket>();
  let nextIndex = 0; // round-robin

  const computeWorkerId = (header: string): number => {
    const live = workers();
    const match = SESSION_ID.exec(header);
    if (match?.[1]) {
      const sid = match[1];
      // The worker's "sticky:connection" message may still be on its way (its
      // IPC channel can be backed up behind adapter traffic) while the client
      // already sends its next request: the id names its worker too.
      const workerId = sessionToWorker.get(sid) ?? workerIdOfSession(sid);
      if (workerId !== undefined && live.has(workerId)) {
        debug("sid %s matched to worker %d", sid, workerId);
        return workerId;
      }
    }
    // A worker still starting up has no listener for the handoff yet: a
    // connection sent to it would be lost. The application marks such a
    // worker with `acceptingConnections = false` until it is ready.
    const ready = [...live.values()].filter((worker) => worker.acceptingConnections !== false).map((worker) => worker.id);
    const candidates = ready.length > 0 ? ready : [...live.keys()];
    switch (options.loadBalancingMethod) {
      case "random": {
        const workerId = candidates[Math.floor(Math.random() * candidates.length)]!;
        debug("randomly selected worker %d", workerId);
        return workerId;
      }
      case "round-robin": {
        const workerId = candidates[nextIndex % candidates.length]!;
        nextIndex = (nextIndex + 1) % candidates.length;
        debug("round-robin selected worker %d", workerId);
        return workerId;
      }
      case "least-connection": {
        let least = candidates[0]!;
        for (const id of candidates) if ((sessionsOf.get(id) ?? 0) < (sessionsOf.get(least) ?? 0)) least = id;
        debug("least-connection selected worker %d", least);
        return least;
      }
    }
  };

  // Sockets handed to each worker whose handoff may not be complete. Node
  // queues a handle until the worker acknowledges the previous one, and closes
  // the primary's copy on that acknowledgement; a worker that dies first
  // leaves the queued and unacknowledged handles open in the primary for good
  // (nothing reads them any more). They are closed when the worker exits.
  const handoffs = new Map<number, Set<Handoff>>();
  const handedOff = (workerId: number, socket: HandedSocket) => {
    let pending = handoffs.get(workerId);
    if (!pending) handoffs.set(workerId, (pending = new Set()));
    if (pending.size >= HANDOFF_SWEEP_AT) for (const entry of pending) if (handoffDone(entry)) pending.delete(entry);
    pending.add({ socket, handle: socket._handle });
  };

  httpServer.on("connection", (connection: NetSocket) => {
    const socket = connection as HandedSocket;
    let workerId: number | undefined;
    let connectionId: string | undefined;
    const sendCallback = (error: Error | null) => {
      if (error) socket.destroy();
    };

    // the primary's HTTP parser never sees these bytes: sticky reads them
    socket.removeAllListeners("data");
    socket.on("data", (chunk: Buffer) => {
      const live = workers();
      if (live.size === 0) {
        debug("no workers available, destroying socket");
        if (workerId !== undefined) {
          socket.destroy(); // already assigned: nothing sensible to answer mid-request
        } else {
          socket.on("error", () => socket.destroy());
          socket.once("finish", () => socket.destroy());
          socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        }
        return;
      }
      if (workerId !== undefined && connectionId !== undefined) {
        const worker = live.get(workerId);
        if (!worker) return void socket.destroy(); // its worker died mid-request
        debug("forwarding chunk (%d bytes) to worker %d (connection %s)", chunk.byteLength, workerId, connectionId);
        worker.send({ type: "sticky:http-chunk", data: chunk, connectionId }, sendCallback);
        return;
      }

      const headerEnd = chunk.indexOf("\r\n\r\n");
      const header = chunk.subarray(0, headerEnd < 0 ? chunk.length : headerEnd).toString();
      workerId = computeWorkerId(header);
      const worker = live.get(workerId)!;
      const lowHeader = header.toLowerCase();
      const mayHaveMultipleChunks = lowHeader.includes("content-length:") || lowHeader.includes("transfer-encoding:");

      // If the full request is not contained in the first chunk, the primary
      // keeps the real socket and forwards the next chunks over IPC: were the
      // handle sent, both processes would read the same stream and split the
      // request's bytes unpredictably. The worker gets a RelayedSocket fed by
      // those chunks instead.
      if (!mayHaveMultipleChunks) {
        debug("handing connection (first chunk %d bytes) to worker %d", chunk.byteLength, workerId);
        // From here on the socket belongs to the worker: the primary must
        // never read from it again. Node's IPC holds a handle back until the
        // worker has acknowledged the previous one (under load, many wait),
        // and meanwhile the stream machinery of a paused socket restarts
        // reading to fill its buffer (maybeReadMore -> _read -> readStart).
        // Once the handle is sent, what it reads is discarded until the
        // worker's acknowledgement closes it: bytes the client sent in that
        // window (a WebSocket client's Socket.IO CONNECT packet, written as
        // soon as the worker's handshake reached it) were lost, and that
        // client never connected.
        socket.pause();
        socket._read = noop;
        if (socket._handle && typeof socket._handle.readStop === "function") {
          socket._handle.reading = false;
          socket._handle.readStop();
        }
        handedOff(workerId, socket);
        worker.send({ type: "sticky:connection", data: chunk }, socket, sendCallback);
        return;
      }

      connectionId = connectionIdOf();
      relayed.set(connectionId, socket);
      debug("relaying connection %s (first chunk %d bytes) to worker %d", connectionId, chunk.byteLength, workerId);
      const socketInfo: SocketInfo = {
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        localAddress: socket.localAddress,
        localPort: socket.localPort,
      };
      worker.send({ type: "sticky:http-chunk-start", data: chunk, connectionId, socketInfo }, sendCallback);
    });

    socket.on("close", () => {
      if (connectionId === undefined || !relayed.delete(connectionId)) return;
      const worker = workerId === undefined ? undefined : workers().get(workerId);
      if (worker?.isConnected()) worker.send({ type: "sticky:abort", connectionId }, noop);
    });
  });

  cluster.on("message", (worker: Worker, message: unknown) => {
    if (!isStickyMessage(message)) return;
    const sticky = message as PrimaryMessage;
    switch (sticky.type) {
      case "sticky:http-response": {
        const socket = relayed.get(sticky.connectionId);
        if (socket && !socket.destroyed) socket.write(toBuffer(sticky.data));
        break;
      }
      case "sticky:http-response-end": {
        const socket = relayed.get(sticky.connectionId);
        if (socket && !socket.destroyed) socket.end();
        relayed.delete(sticky.connectionId);
        break;
      }
      case "sticky:http-response-destroy": {
        const socket = relayed.get(sticky.connectionId);
        if (socket && !socket.destroyed) socket.destroy(sticky.error ? new Error(sticky.error) : undefined);
        relayed.delete(sticky.connectionId);
        break;
      }
      case "sticky:connection":
        debug("session %s bound to worker %d", sticky.data, worker.id);
        sessionToWorker.set(sticky.data, worker.id);
        sessionsOf.set(worker.id, (sessionsOf.get(worker.id) ?? 0) + 1);
        break;
      case "sticky:disconnection":
        debug("session %s unbound from worker %d", sticky.data, worker.id);
        if (sessionToWorker.get(sticky.data) === worker.id) sessionToWorker.delete(sticky.data);
        sessionsOf.set(worker.id, Math.max(0, (sessionsOf.get(worker.id) ?? 0) - 1));
        break;
    }
  });

  cluster.on("exit", (worker: Worker) => {
    const pending = handoffs.get(worker.id);
    handoffs.delete(worker.id);
    for (const entry of pending ?? []) {
      if (handoffDone(entry)) continue;
      debug("closing a connection handed to worker %d that never took it", worker.id);
      if (entry.socket._handle) entry.socket.destroy();
      else entry.handle?.close?.();
    }
    debug("worker %d exited, cleaning up its sessions", worker.id);
    sessionsOf.delete(worker.id);
    for (const [sid, owner] of sessionToWorker) if (owner === worker.id) sessionToWorker.delete(sid);
  });
}

/** `setupMaster` under the name Node's cluster now uses. */
export const setupPrimary = setupMaster;

/**
 * The worker's side of a connection the primary keeps (a request with a
 * body): its bytes arrive over IPC, and what the worker writes goes back the
 * same way. Just enough of a net.Socket for Node's HTTP server.
 */
class RelayedSocket extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  private aborted = false;

  constructor(
    socketInfo: SocketInfo,
    readonly connectionId: string,
  ) {
    super({ allowHalfOpen: true });
    this.remoteAddress = socketInfo.remoteAddress;
    this.remotePort = socketInfo.remotePort;
    this.localAddress = socketInfo.localAddress;
    this.localPort = socketInfo.localPort;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!process.connected || !process.send) return callback();
    process.send({ type: "sticky:http-response", data: chunk, connectionId: this.connectionId }, undefined, {}, () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!process.connected || !process.send) return callback();
    process.send({ type: "sticky:http-response-end", connectionId: this.connectionId }, undefined, {}, () => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.aborted || !process.connected || !process.send) return callback(this.aborted ? null : error);
    process.send({ type: "sticky:http-response-destroy", connectionId: this.connectionId, error: error?.message }, undefined, {}, () =>
      callback(error),
    );
  }

  addChunk(chunk: Buffer): void {
    if (this.destroyed || this.readableEnded) return;
    this.push(chunk);
  }

  /** The client closed its connection in the primary. */
  abort(): void {
    this.aborted = true;
    this.destroy(new Error("client connection closed"));
  }

  destroySoon(): void {
    this.end();
  }
  override cork(): void {}
  override uncork(): void {}
  setTimeout(_timeout: number, callback?: () => void): this {
    if (callback) this.once("timeout", callback);
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  address(): { family: string; address: string | undefined; port: number | undefined } {
    return { family: "IPv4", address: this.localAddress, port: this.localPort };
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

/**
 * In a worker: takes the connections the primary hands over into `io`'s HTTP
 * server, and tells the primary which sessions live here. The server itself
 * does not listen.
 */
export function setupWorker(io: SocketIoServer): void {
  if (!cluster.isWorker || !cluster.worker) throw new StickyError("NOT_WORKER", "setupWorker() runs in a cluster worker");
  const workerId = cluster.worker.id;
  const engine = io.engine as SocketIoServer["engine"] & { generateId: (req: unknown) => string };
  const httpServer = (io as unknown as { httpServer?: HttpServer }).httpServer;
  if (!httpServer) throw new StickyError("INVALID_OPTIONS", "setupWorker() needs a Socket.IO server attached to an HTTP server");

  // Unless the application chose its own ids, a session id names its worker,
  // so that the primary routes the session's next requests right even before
  // it got this worker's "sticky:connection" message.
  if (!Object.prototype.hasOwnProperty.call(engine, "generateId")) engine.generateId = () => sessionIdOf(workerId);

  httpServer.prependListener("request", (_req, res) => {
    // no keep-alive: a reused connection would go on to the worker of its first request, whatever session it asks for
    res.setHeader("Connection", "close");
  });

  const relayedSockets = new Map<string, RelayedSocket>();

  process.on("message", (message: unknown, handle: unknown) => {
    if (!isStickyMessage(message)) return;
    const sticky = message as WorkerMessage;
    switch (sticky.type) {
      case "sticky:connection": {
        const socket = handle as NetSocket | undefined;
        if (!socket) {
          // the client closed while its handle was on its way
          debug("ignoring a connection from the primary that closed during its transfer");
          return;
        }
        debug("received connection from primary");
        httpServer.emit("connection", socket);
        socket.unshift(toBuffer(sticky.data)); // the bytes the primary read, back in front
        break;
      }
      case "sticky:http-chunk-start": {
        const { socketInfo, connectionId } = sticky;
        debug("received first chunk of connection %s", connectionId);
        const socket = new RelayedSocket(socketInfo, connectionId);
        socket.once("close", () => relayedSockets.delete(connectionId));
        httpServer.emit("connection", socket);
        socket.addChunk(toBuffer(sticky.data));
        relayedSockets.set(connectionId, socket);
        break;
      }
      case "sticky:http-chunk": {
        const socket = relayedSockets.get(sticky.connectionId);
        if (socket) socket.addChunk(toBuffer(sticky.data));
        else debug("received chunk for unknown connection %s", sticky.connectionId);
        break;
      }
      case "sticky:abort":
        relayedSockets.get(sticky.connectionId)?.abort();
        break;
    }
  });

  const ignoreError = () => {}; // the primary is gone: the next request fails anyway
  const tell = (type: "sticky:connection" | "sticky:disconnection", sid: string) => {
    if (process.connected && process.send) process.send({ type, data: sid }, undefined, {}, ignoreError);
  };
  engine.on("connection", (socket: { id: string; once: (event: "close", listener: () => void) => void }) => {
    debug("new session %s", socket.id);
    tell("sticky:connection", socket.id);
    socket.once("close", () => {
      debug("session %s closed", socket.id);
      tell("sticky:disconnection", socket.id);
    });
  });
}
