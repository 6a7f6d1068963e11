import type { Presence } from "@presence/socketio";
import createDebug from "debug";
import type { Server, Socket } from "socket.io";
import { CHANNEL_NAME, CHANNEL_NAME_RULE, MAX_CHANNELS_PER_CONNECTION, joinChannel, leaveChannel } from "./channels";
import { clientAddress } from "./client-address";
import type { DemoConfig } from "./config";
import { parseInfo } from "./http";
import type { DemoLimits } from "./limits";
import type { DemoMetrics } from "./metrics";
import type { TabSlots } from "./tabs";
import type { TokenSigner } from "./token";

const debug = createDebug("presence:demo");

/** Sent to a connection that lost its tab slot to a newer one of its user, just before the server disconnects it. */
export const EVICTED = "presence:evicted";
/** Why, in the `EVICTED` event's `{ reason }`. */
export const EVICTED_REASON = "too many connections";
/**
 * Sent to each new connection through the adapter, as a broadcast to the
 * socket's own room: it gives the client its first offset, without which
 * connection state recovery cannot bring it back (Socket.IO recovers from the
 * last broadcast a client received).
 */
export const SESSION = "presence:session";
/** Between nodes: disconnect this connection, if it is yours. */
const EVICT = "presence-demo:evict";

/** The client's address, as the limits count it (see `clientAddress`). */
export const handshakeAddress = (socket: Socket, config: DemoConfig): string =>
  clientAddress(socket.handshake.address, socket.handshake.headers["x-forwarded-for"], config.trustProxy);

/**
 * How often one connection may ask for a change (a room join or leave, an
 * info update): each costs a store call and an event to many clients, so a
 * socket may not ask without end. A bucket of `burst`, refilled at
 * `perSecond`.
 */
export const CHANGE_REQUESTS = { burst: 20, perSecond: 10 };

/** A connection's request budget: true while it has some left. */
function requestBudget({ burst, perSecond } = CHANGE_REQUESTS): () => boolean {
  let tokens = burst;
  let at = Date.now();
  return () => {
    const now = Date.now();
    tokens = Math.min(burst, tokens + ((now - at) / 1000) * perSecond);
    at = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
}

type Ack = (answer: { ok: boolean; error?: string }) => void;
const reply = (ack: unknown, answer: { ok: boolean; error?: string }) => typeof ack === "function" && (ack as Ack)(answer);

export interface SocketOptions {
  io: Server;
  config: DemoConfig;
  presence: Presence | undefined;
  signer: TokenSigner;
  limits: DemoLimits;
  /** The users' tab slots; `undefined` without a cap. */
  tabs: TabSlots | undefined;
  metrics: DemoMetrics;
}

/**
 * Middlewares in the order they run: the address's attempt budget, then
 * (presence off) the token check, or (presence on) the binding's identify
 * hook, registered by `createPresence`.
 */
export function limitAttempts({ io, config, limits, metrics, signer }: Omit<SocketOptions, "presence" | "tabs">): void {
  const refuse = (reason: string) => {
    metrics.refused.inc({ reason });
    return new Error(reason);
  };
  io.use((socket, next) => {
    limits.connectionAttempt(handshakeAddress(socket, config)).then((ok) => next(ok ? undefined : refuse("rate limited")));
  });
  if (!config.presence) {
    // the same app without counting: the benchmarks' baseline
    io.use((socket, next) => {
      signer.verify(socket.handshake.auth?.token).then((claims) => next(claims ? undefined : refuse("unauthorized")));
    });
  }
}

/**
 * Disconnects connections that lost their tab slot, wherever they are: here,
 * or on another node (told by `serverSideEmit`). Each first hears why, and is
 * disconnected by the server, so a client does not reconnect on its own.
 */
function evictions(io: Server, config: DemoConfig): (connectionId: string) => void {
  const evictHere = (socket: Socket) => {
    // delivered at once, before the disconnect: with connection state recovery on, socket.emit would go
    // through the adapter (an IPC or Redis round trip) and arrive after it
    io.local.to(socket.id).emit(EVICTED, { reason: EVICTED_REASON });
    socket.disconnect();
  };
  const multiNode = config.mode !== "standalone";
  if (multiNode) {
    io.on(EVICT, (connectionId: unknown) => {
      const socket = typeof connectionId === "string" ? io.of("/").sockets.get(connectionId) : undefined;
      if (socket) evictHere(socket);
    });
  }
  return (connectionId) => {
    const socket = io.of("/").sockets.get(connectionId);
    if (socket) evictHere(socket);
    else if (multiNode) io.serverSideEmit(EVICT, connectionId);
  };
}

/** The users' tab slots, and the channels and info handlers (presence on). */
export function handleSockets({ io, config, presence, tabs, metrics }: SocketOptions): void {
  if (!presence) return;
  const evict = evictions(io, config);

  io.on("connection", (socket) => {
    const userId = presence.userIdOf(socket);
    if (userId === undefined) return;
    if (!socket.recovered) io.to(socket.id).emit(SESSION, { userId });

    if (tabs) {
      // taken once the connection is open, given back however it closes: after the take, in that order
      const taken = tabs.open(userId, socket.id).then(
        (evicted) => {
          metrics.evicted.inc(evicted.length);
          for (const connectionId of evicted) evict(connectionId);
        },
        (error: Error) => debug("tab slots unavailable, %s connects uncounted: %s", socket.id, error.message),
      );
      socket.once("disconnect", () => void taken.then(() => tabs.close(userId, socket.id)));
    }
    // a socket that connection state recovery brought back is in its channels' rooms again: the binding counts them

    const withinBudget = requestBudget();
    const tooMany = { ok: false, error: "too many requests: slow down" };
    const channelRequest = async (name: unknown, ack: unknown, change: "join" | "leave") => {
      if (typeof name !== "string" || !CHANNEL_NAME.test(name)) return reply(ack, { ok: false, error: CHANNEL_NAME_RULE });
      if (!withinBudget()) return reply(ack, tooMany);
      if (change === "leave") await leaveChannel(socket, name);
      else if (!(await joinChannel(socket, name))) {
        return reply(ack, { ok: false, error: `in ${MAX_CHANNELS_PER_CONNECTION} rooms already: leave one first` });
      }
      reply(ack, { ok: true });
    };
    socket.on("room:join", (name: unknown, ack: unknown) => {
      channelRequest(name, ack, "join").catch(() => reply(ack, { ok: false, error: "try again" }));
    });
    socket.on("room:leave", (name: unknown, ack: unknown) => {
      channelRequest(name, ack, "leave").catch(() => reply(ack, { ok: false, error: "try again" }));
    });
    socket.on("user:update", (info: unknown, ack: unknown) => {
      if (!withinBudget()) return void reply(ack, tooMany);
      Promise.resolve()
        .then(() => presence.updateInfo(userId, parseInfo(info) ?? {}))
        .then(
          () => reply(ack, { ok: true }),
          (error: Error) => reply(ack, { ok: false, error: error.message }),
        );
    });
  });
}
