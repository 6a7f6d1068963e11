import type { Presence } from "@presence/socketio";
import type { Server, Socket } from "socket.io";
import type { DemoConfig } from "./config";
import { ROOM_NAME, ROOM_NAME_RULE, parseInfo } from "./http";
import type { DemoLimits } from "./limits";
import type { DemoMetrics } from "./metrics";
import type { TokenSigner } from "./token";

/** The client's address: the socket's peer, or the first `X-Forwarded-For` hop behind a trusted proxy. */
export function clientAddress(socket: Socket, trustProxy: boolean): string {
  const forwarded = socket.handshake.headers["x-forwarded-for"];
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(",")[0]?.trim();
  return (trustProxy && first) || socket.handshake.address || "unknown";
}

type Ack = (answer: { ok: boolean; error?: string }) => void;
const reply = (ack: unknown, answer: { ok: boolean; error?: string }) => typeof ack === "function" && (ack as Ack)(answer);

export interface SocketOptions {
  io: Server;
  config: DemoConfig;
  presence: Presence | undefined;
  signer: TokenSigner;
  limits: DemoLimits;
  metrics: DemoMetrics;
}

/**
 * Middlewares in the order they run: the address's attempt budget, then
 * (presence off) the token check, or (presence on) the binding's identify
 * hook, registered by `createPresence`, and after it the user's tab budget.
 */
export function limitAttempts({ io, config, limits, metrics, signer }: Omit<SocketOptions, "presence">): void {
  const refuse = (reason: string) => {
    metrics.refused.inc({ reason });
    return new Error(reason);
  };
  io.use((socket, next) => {
    limits.connectionAttempt(clientAddress(socket, config.trustProxy)).then((ok) => next(ok ? undefined : refuse("rate limited")));
  });
  if (!config.presence) {
    // the same app without counting: the benchmarks' baseline
    io.use((socket, next) => {
      signer.verify(socket.handshake.auth?.token).then((claims) => next(claims ? undefined : refuse("unauthorized")));
    });
  }
}

/** The user's tab budget, and the rooms and info handlers (presence on). */
export function handleSockets({ io, presence, limits, metrics }: SocketOptions): void {
  if (!presence) return;
  const holding = new WeakSet<Socket>();
  io.use((socket, next) => {
    const userId = presence.userIdOf(socket);
    if (userId === undefined) return next();
    limits.openTab(userId).then((ok) => {
      if (!ok) {
        metrics.refused.inc({ reason: "too many connections" });
        return next(new Error("too many connections"));
      }
      holding.add(socket);
      next();
    });
  });

  io.on("connection", (socket) => {
    const userId = presence.userIdOf(socket);
    if (userId === undefined) return;
    if (holding.has(socket)) socket.once("disconnect", () => limits.closeTab(userId));

    const roomRequest = async (room: unknown, ack: unknown, change: "join" | "leave") => {
      if (typeof room !== "string" || !ROOM_NAME.test(room)) return reply(ack, { ok: false, error: ROOM_NAME_RULE });
      // a room named like another socket's id would receive that socket's private messages
      if (change === "join" && (await io.in(room).fetchSockets()).some((other) => other.id === room)) {
        return reply(ack, { ok: false, error: "that room name is taken" });
      }
      await (change === "join" ? socket.join(room) : socket.leave(room));
      reply(ack, { ok: true });
    };
    socket.on("room:join", (room: unknown, ack: unknown) => {
      roomRequest(room, ack, "join").catch(() => reply(ack, { ok: false, error: "try again" }));
    });
    socket.on("room:leave", (room: unknown, ack: unknown) => {
      roomRequest(room, ack, "leave").catch(() => reply(ack, { ok: false, error: "try again" }));
    });
    socket.on("user:update", (info: unknown, ack: unknown) => {
      Promise.resolve()
        .then(() => presence.updateInfo(userId, parseInfo(info) ?? {}))
        .then(
          () => reply(ack, { ok: true }),
          (error: Error) => reply(ack, { ok: false, error: error.message }),
        );
    });
  });
}
