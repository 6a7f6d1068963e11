import type { IncomingMessage, Server as HttpServer } from "node:http";
import type { Duplex } from "node:stream";
import type { DemoConfig } from "./config";

/** How long an idle keep-alive connection stays open after a response: Node's own default, not Fastify's 72 s. */
export const KEEP_ALIVE_TIMEOUT_MS = 5000;

/**
 * What no HTTP client may exceed, so that slow or idle connections cannot
 * pile up: the time to send a request's headers, the time to send the whole
 * request, and the connections one process holds at once.
 */
export interface ConnectionLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
}

export const connectionLimits = (config: DemoConfig): ConnectionLimits => ({
  headersTimeoutMs: config.headersTimeoutMs,
  requestTimeoutMs: config.requestTimeoutMs,
  maxConnections: config.maxHttpConnections,
});

/**
 * Options for `http.createServer`: how often Node looks for late requests.
 * Its default, 30 s, would let a late request live up to 30 s past its
 * timeout; a quarter of the headers timeout (at most a second) keeps the
 * timeouts what they say, for a scan of the open connections.
 */
export const serverOptions = (limits: ConnectionLimits): { connectionsCheckingInterval: number } => ({
  connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(limits.headersTimeoutMs / 4))),
});

/**
 * A server that accepts its own connections (standalone, the metrics port),
 * made with `serverOptions`: Node enforces the limits, answering a late
 * request with a 408 and closing its connection (an idle one too), and
 * refusing connections over the cap.
 */
export function limitServer(server: HttpServer, limits: ConnectionLimits): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.maxConnections = limits.maxConnections;
}

/**
 * The cluster primary's server, which only relays: `@presence/sticky` reads
 * the first bytes of each connection and hands it to a worker (or, for a
 * request with a body, relays it over IPC). Node never sees where such a
 * request's headers end, so its headers timeout, counted from the
 * connection's start, bounds how long the primary holds any connection: set
 * to the whole request's timeout. The workers enforce the finer limits. The
 * server must be made with `serverOptions`.
 */
export function limitRelay(server: HttpServer, limits: ConnectionLimits): void {
  server.headersTimeout = limits.requestTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.maxConnections = limits.maxConnections;
}

const hasBody = (request: IncomingMessage) =>
  request.headers["transfer-encoding"] !== undefined || Number(request.headers["content-length"] ?? 0) > 0;

/**
 * A sticky worker's server: its connections are handed to it by the primary
 * (`server.emit("connection", socket)`), which Node's timeouts and cap never
 * see, since they track only connections the server accepted itself. So the
 * worker keeps them: a connection over the cap is closed at once; one whose
 * request has not arrived whole in time is closed. A WebSocket upgrade ends
 * the watch (Engine.IO's heartbeat takes over), and so does a request's end.
 * A connection whose answer is sent is closed.
 */
export function limitHandedConnections(server: HttpServer, limits: ConnectionLimits): void {
  const watched = new WeakMap<Duplex, { headers: NodeJS.Timeout; request: NodeJS.Timeout }>();
  let open = 0;
  server.on("connection", (socket: Duplex) => {
    if (open >= limits.maxConnections) return void socket.destroy();
    open++;
    const timers = {
      headers: setTimeout(() => socket.destroy(), limits.headersTimeoutMs),
      request: setTimeout(() => socket.destroy(), limits.requestTimeoutMs),
    };
    watched.set(socket, timers);
    // A request with a body is relayed by the primary over IPC, on a stand-in socket whose reading side
    // never ends, and that the sticky layer never closes once it answered: each would stay open (and
    // counted) for good. The answer sent and the writing side done, nothing more comes: it is closed.
    socket.once("finish", () => socket.destroy());
    socket.once("close", () => {
      open--;
      clearTimeout(timers.headers);
      clearTimeout(timers.request);
    });
  });
  server.on("request", (request: IncomingMessage) => {
    const timers = watched.get(request.socket);
    if (!timers) return;
    clearTimeout(timers.headers);
    // a request without a body is whole once its headers are (a long-polling GET waits for its answer, not for the client)
    if (!hasBody(request)) clearTimeout(timers.request);
    else request.once("end", () => clearTimeout(timers.request));
  });
  server.on("upgrade", (request: IncomingMessage) => {
    const timers = watched.get(request.socket);
    if (!timers) return;
    clearTimeout(timers.headers);
    clearTimeout(timers.request);
  });
}
