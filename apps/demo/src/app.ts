import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { PresenceError, assertUserId, serializeUserInfo, type PresenceStore, type UserInfo, type UserPresence } from "@presence/core";
import { createPresence, type Presence } from "@presence/socketio";
import createDebug from "debug";
import { RateLimiterMemory } from "rate-limiter-flexible";
import { Server, type ServerOptions, type Socket } from "socket.io";
import type { DemoConfig } from "./config";
import { signToken, verifyToken } from "./token";

const debug = createDebug("presence:demo");
const page = readFileSync(new URL("../public/index.html", import.meta.url));
const MAX_BODY_BYTES = 16 * 1024;

export interface DemoApp {
  http: HttpServer;
  io: Server;
  /** Undefined when presence is off (`--presence off`). */
  presence: Presence | undefined;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "body must be JSON");
  }
}

/** A room's name in the demo: letters, digits, spaces, `_`, `.` and `-`, up to 64 characters. */
const ROOM_NAME = /^[\p{L}\p{N} _.-]{1,64}$/u;

/** What a user shows others in the demo: `{ name?, status? }`, strings of up to 64 characters. */
function parseInfo(value: unknown): UserInfo | undefined {
  if (value === undefined) return undefined;
  serializeUserInfo(value); // a plain JSON object within 1 KB, or InvalidUserInfoError
  const { name, status, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw new HttpError(400, "info takes only name and status");
  for (const [key, field] of Object.entries({ name, status })) {
    if (field !== undefined && (typeof field !== "string" || field.length > 64)) {
      throw new HttpError(400, `info.${key} must be a string of at most 64 characters`);
    }
  }
  return { ...(name === undefined ? {} : { name }), ...(status === undefined ? {} : { status }) };
}

/** Every user of a list, tolerating a cluster node that did not answer (marked partial). */
async function collect(pages: AsyncIterable<UserPresence[]>): Promise<{ users: UserPresence[]; partial: boolean }> {
  const users: UserPresence[] = [];
  try {
    for await (const page of pages) users.push(...page);
    return { users, partial: false };
  } catch (error) {
    const partial = (error as { partial?: unknown }).partial;
    if (error instanceof PresenceError && error.code === "NODES_UNRESPONSIVE" && Array.isArray(partial)) {
      return { users: partial as UserPresence[], partial: true };
    }
    throw error;
  }
}

export interface DemoAppOptions {
  config: DemoConfig;
  /** Makes the store, given the Socket.IO server (the cluster-query store needs it). */
  createStore: (io: Server) => PresenceStore;
  serverOptions?: Partial<ServerOptions>;
  /** Releases what the store and adapter opened, after the server is closed. */
  close?: () => Promise<void>;
}

/** The demo's HTTP API, page and Socket.IO server, on whatever store the mode chose. */
export function createDemoApp({ config, createStore, serverOptions, close }: DemoAppOptions): DemoApp {
  const http = createServer();
  const io = new Server(http, serverOptions);
  const claimsOf = (socket: Socket) => verifyToken(socket.handshake.auth?.token, config.secret);

  // abuse limits, per worker: connection attempts (and logins) per IP, open connections per user
  const limiter = config.rateLimit > 0 ? new RateLimiterMemory({ points: config.rateLimit, duration: 60 }) : undefined;
  const withinRate = async (ip: string | undefined) => {
    if (!limiter) return true;
    return limiter.consume(ip ?? "unknown").then(
      () => true,
      () => false,
    );
  };
  io.use((socket, next) => {
    withinRate(socket.handshake.address).then((ok) => next(ok ? undefined : new Error("rate limited")));
  });

  let presence: Presence | undefined;
  if (config.presence) {
    presence = createPresence(io, {
      store: createStore(io),
      leaveDelayMs: config.leaveDelayMs,
      rooms: (room) => ROOM_NAME.test(room),
      identify: (socket) => {
        const claims = claimsOf(socket);
        return claims && { id: claims.sub, info: claims.info };
      },
    });
    presence.on("error", (error) => debug("presence error: %s", error.message));
    const tracked = presence;
    io.on("connection", (socket) => {
      const reply = (ack: unknown, answer: { ok: boolean; error?: string }) => typeof ack === "function" && ack(answer);
      const roomRequest = async (room: unknown, ack: unknown, change: "join" | "leave") => {
        if (typeof room !== "string" || !ROOM_NAME.test(room)) {
          return reply(ack, { ok: false, error: "a room name is 1 to 64 letters, digits, spaces, _ . or -" });
        }
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
        const userId = tracked.userIdOf(socket)!;
        Promise.resolve()
          .then(() => tracked.updateInfo(userId, parseInfo(info) ?? {}))
          .then(
            () => reply(ack, { ok: true }),
            (error: Error) => reply(ack, { ok: false, error: error.message }),
          );
      });
    });
  } else {
    // the same app without counting: the benchmarks' baseline
    io.use((socket, next) => next(claimsOf(socket) ? undefined : new Error("unauthorized")));
  }
  if (presence && config.maxConnectionsPerUser > 0) {
    const open = new Map<string, number>();
    const userOf = (socket: Socket) => presence!.userIdOf(socket);
    io.use((socket, next) => {
      const userId = userOf(socket);
      if (userId !== undefined && (open.get(userId) ?? 0) >= config.maxConnectionsPerUser) {
        return next(new Error("too many connections"));
      }
      next();
    });
    io.on("connection", (socket) => {
      const userId = userOf(socket);
      if (userId === undefined) return;
      open.set(userId, (open.get(userId) ?? 0) + 1);
      socket.once("disconnect", () => {
        const left = (open.get(userId) ?? 1) - 1;
        if (left > 0) open.set(userId, left);
        else open.delete(userId);
      });
    });
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname;
    if (req.method === "GET" && (path === "/" || path === "/index.html")) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page);
      return;
    }
    if (req.method === "GET" && path === "/api/health") {
      return send(res, 200, { ok: true, mode: config.mode, pid: process.pid });
    }
    if (req.method === "POST" && path === "/api/login") {
      if (!(await withinRate(req.socket.remoteAddress))) throw new HttpError(429, "too many requests");
      const body = (await readJson(req)) as { userId?: unknown; info?: unknown } | null;
      const userId = body?.userId;
      let info: UserInfo | undefined;
      try {
        assertUserId(userId);
        info = parseInfo(body?.info);
      } catch (error) {
        throw error instanceof HttpError ? error : new HttpError(400, (error as Error).message);
      }
      return send(res, 200, { token: signToken(userId, config.secret, undefined, undefined, info) });
    }
    if (path.startsWith("/api/presence") && !presence) throw new HttpError(503, "presence is off");
    if (req.method === "GET" && path === "/api/presence") {
      const { users, partial } = await collect(presence!.users({ pageSize: 500 }));
      return send(res, 200, {
        count: users.length,
        users: users.map((u) => u.userId),
        connections: Object.fromEntries(users.map((u) => [u.userId, u.connections])),
        info: Object.fromEntries(users.flatMap((u) => (u.info ? [[u.userId, u.info]] : []))),
        ...(partial ? { partial } : {}),
      });
    }
    const roomPath = /^\/api\/rooms\/([^/]+)\/presence$/.exec(path);
    if (req.method === "GET" && roomPath) {
      let room: string;
      try {
        room = decodeURIComponent(roomPath[1]!);
      } catch {
        throw new HttpError(400, "malformed room name");
      }
      if (!ROOM_NAME.test(room)) throw new HttpError(400, "a room name is 1 to 64 letters, digits, spaces, _ . or -");
      if (!presence) throw new HttpError(503, "presence is off");
      const { users, partial } = await collect(presence.roomUsers(room, { pageSize: 500 }));
      return send(res, 200, {
        count: users.length,
        users: users.map(({ userId, info }) => ({ userId, info: info ?? {} })),
        ...(partial ? { partial } : {}),
      });
    }
    if (req.method === "GET" && path.startsWith("/api/presence/")) {
      let userId: string;
      try {
        userId = decodeURIComponent(path.slice("/api/presence/".length));
        assertUserId(userId);
      } catch (error) {
        throw new HttpError(400, error instanceof URIError ? "malformed user id" : (error as Error).message);
      }
      return send(res, 200, { userId, online: await presence!.isUserConnected(userId) });
    }
    throw new HttpError(404, "not found");
  }

  http.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.startsWith("/socket.io/")) return; // Socket.IO answers these
    route(req, res).catch((error: unknown) => {
      if (res.headersSent) return res.destroy();
      if (error instanceof HttpError) return send(res, error.status, { error: error.message });
      debug("request %s %s failed: %O", req.method, req.url, error);
      send(res, 503, { error: "presence is unavailable right now" });
    });
  });

  return {
    http,
    io,
    presence,
    /** Disconnects every client, announces the leaves this causes, then closes the server. */
    async close() {
      io.disconnectSockets(true);
      await presence?.close();
      await new Promise<void>((resolve) => io.close(() => resolve()));
      await close?.();
    },
  };
}
