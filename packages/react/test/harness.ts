import { MemoryStore } from "@presence/memory";
import { SUBSCRIBE, UNSUBSCRIBE, type SyncScope } from "@presence/socketio";
import { startServer, type TestServer } from "@presence/socketio/testing";
import { io as connect, type Socket } from "socket.io-client";

export interface Server extends TestServer {
  /** Every subscribe and unsubscribe the server received, as `+all`, `-room:general`, ... */
  requests: string[];
}

/** A real Socket.IO server with presence on a loopback port (MemoryStore), recording the sync requests it gets. */
export async function startPresenceServer(): Promise<Server> {
  const server = await startServer({ store: new MemoryStore(), rooms: "room-", sync: { tickMs: 20 } });
  const requests: string[] = [];
  const key = (scope: SyncScope) => (scope.type === "room" ? `room:${scope.room}` : scope.type);
  server.io.on("connection", (socket) => {
    // a batch (protocol 6) counts as its subscribes, in order
    socket.on(SUBSCRIBE, (request: { scope: SyncScope; batch?: Array<{ scope: SyncScope }> }) => {
      for (const { scope } of request.batch ?? [request]) requests.push(`+${key(scope)}`);
    });
    socket.on(UNSUBSCRIBE, ({ scope }: { scope: SyncScope }) => requests.push(`-${key(scope)}`));
    socket.on("join", (room: string, ack: () => void) => void Promise.resolve(socket.join(room)).then(ack));
  });
  return Object.assign(server, { requests });
}

/** A real socket.io-client connection over WebSocket, as `userId`; resolves once connected, within 10 s. */
export function connectAs(port: number, userId: string): Promise<Socket> {
  const socket = connect(`http://127.0.0.1:${port}`, { auth: { userId }, forceNew: true, reconnection: false, transports: ["websocket"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`${userId} did not connect to port ${port} within 10 s`));
    }, 10_000);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (error) => {
      clearTimeout(timer);
      socket.close();
      reject(error);
    });
  });
}

export { waitFor } from "@presence/core/testing";
