import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server, type ServerOptions } from "socket.io";
import { io as connect, type ManagerOptions, type Socket as ClientSocket, type SocketOptions } from "socket.io-client";
import type { PresenceOptions } from "./options";
import { createPresence, type Presence } from "./presence";

/** A Socket.IO server on a loopback port with presence bound to it, as {@link startServer} makes it. */
export interface TestServer {
  io: Server;
  http: HttpServer;
  port: number;
  presence: Presence;
  close(): Promise<void>;
}

/** A real Socket.IO server on a loopback port chosen by the OS, with presence bound to it (no leave grace unless given). */
export async function startServer(
  options: Partial<PresenceOptions> & Pick<PresenceOptions, "store">,
  serverOptions: Partial<ServerOptions> = {},
): Promise<TestServer> {
  const http = createServer();
  const io = new Server(http, serverOptions);
  const presence = createPresence(io, {
    identify: (socket) => socket.handshake.auth.userId,
    // leaves at once unless a test asks for the grace: the tests watch leaves happen
    leaveDelayMs: 0,
    ...options,
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = (http.address() as AddressInfo).port;
  return {
    io,
    http,
    port,
    presence,
    async close() {
      await new Promise<void>((resolve) => io.close(() => resolve()));
      await presence.close();
    },
  };
}

/** A real socket.io-client connection; resolves once connected, rejects on connect_error. */
export function connectClient(
  port: number,
  auth: Record<string, unknown>,
  options: Partial<ManagerOptions & SocketOptions> = {},
): Promise<ClientSocket> {
  const socket = connect(`http://127.0.0.1:${port}`, {
    auth,
    forceNew: true,
    reconnection: false,
    transports: ["websocket"],
    ...options,
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (error) => {
      reject(error);
      socket.close();
    });
    // a handshake over the server's buffer limit is cut at the transport: no connect_error
    // ("forced close" is the client tearing down after a connect_error, which comes next)
    socket.io.once("close", (reason) => {
      if (reason !== "forced close") reject(new Error(`transport closed: ${reason}`));
    });
  });
}

export { eventually } from "@presence/core/testing";

/** Waits `ms` milliseconds. */
export { sleep } from "@presence/core/testing";

/** Records the presence events one client receives, but for those about `ignore` (the observer itself). */
export function recordEvents(socket: ClientSocket, ignore = "observer"): string[] {
  const events: string[] = [];
  socket.on("user has connected", (userId: string) => userId !== ignore && events.push(`+${userId}`));
  socket.on("user has disconnected", (userId: string) => userId !== ignore && events.push(`-${userId}`));
  return events;
}
