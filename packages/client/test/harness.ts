import { createServer } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import type { PresenceStore } from "@presence/core";
import { createPresence, type Presence, type PresenceOptions } from "@presence/socketio";
import { Server, type Namespace, type ServerOptions } from "socket.io";
import { io as connect, type ManagerOptions, type Socket as ClientSocket, type SocketOptions } from "socket.io-client";

/** What the tests use of socket.io-adapter's ClusterAdapterWithHeartbeat (socket.io's own copy, loaded from socket.io). */
interface ClusterAdapterBase {
  readonly uid: string;
  readonly nsp: Namespace;
  init(): void;
  onMessage(message: unknown): void;
  onResponse(response: unknown): void;
  close(): void;
}
type ClusterAdapterClass = new (nsp: Namespace, options: { heartbeatInterval: number; heartbeatTimeout: number }) => ClusterAdapterBase;

const fromSocketIo = createRequire(createRequire(import.meta.url).resolve("socket.io"));
const { ClusterAdapterWithHeartbeat } = fromSocketIo("socket.io-adapter") as { ClusterAdapterWithHeartbeat: ClusterAdapterClass };

/**
 * An in-memory bus for Socket.IO's ClusterAdapter protocol: several servers
 * in one process broadcast to each other's sockets, as over Redis or IPC
 * (the same bus as packages/cluster-query/test/in-process-cluster.ts).
 */
export interface Bus {
  adapter: (nsp: Namespace) => ClusterAdapterBase;
  /** Messages between nodes (broadcasts, server-side emits) to lose on the way, as a dropped pub/sub message is. */
  drop: (message: { type: number; data?: unknown }) => boolean;
  /** Cuts a node off from the others for good, as a kill -9 does (its sockets stay, unseen). */
  kill: (nsp: Namespace) => void;
  /** Holds a node's inbound messages for `ms`, then delivers them in order, as a stalled event loop does. */
  stall: (nsp: Namespace, ms: number) => void;
}

export function createBus(): Bus {
  const members = new Set<ClusterAdapterBase>();
  const dead = new Set<Namespace>();
  const held = new Map<Namespace, Promise<void>>();
  const bus: Bus = {
    adapter: (nsp) => new BusAdapter(nsp),
    drop: () => false,
    kill: (nsp) => void dead.add(nsp),
    stall: (nsp, ms) => {
      const until = sleep(ms);
      held.set(nsp, until);
      void until.then(() => held.get(nsp) === until && held.delete(nsp));
    },
  };
  class BusAdapter extends ClusterAdapterWithHeartbeat {
    constructor(nsp: Namespace) {
      super(nsp, { heartbeatInterval: 200, heartbeatTimeout: 2000 });
      members.add(this);
      this.init();
    }

    doPublish(message: unknown): Promise<string> {
      if (dead.has(this.nsp) || bus.drop(message as { type: number; data?: unknown })) return Promise.resolve("");
      for (const member of members) {
        if (member === this || member.nsp.name !== this.nsp.name) continue;
        void (held.get(member.nsp) ?? Promise.resolve()).then(() => setImmediate(() => member.onMessage(message)));
      }
      return Promise.resolve("");
    }

    doPublishResponse(requesterUid: string, response: unknown): Promise<void> {
      for (const member of members) if (member.uid === requesterUid) setImmediate(() => member.onResponse(response));
      return Promise.resolve();
    }

    override close(): void {
      members.delete(this);
      super.close();
    }
  }
  // a plain function: Socket.IO calls it with `new`
  bus.adapter = function (nsp: Namespace) {
    return new BusAdapter(nsp);
  };
  return bus;
}

/**
 * One store shared by several nodes in one process: only the first node hears
 * the store's own transitions (as only one process would), and closing a
 * node leaves the store open for the others.
 */
export function shareStore(store: PresenceStore, nodes: number): PresenceStore[] {
  return Array.from({ length: nodes }, (_, index) =>
    new Proxy(store, {
      get(target, property) {
        if (property === "close") return () => Promise.resolve();
        if (property === "onTransition" && index > 0) return () => () => {};
        const value: unknown = Reflect.get(target, property);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }),
  );
}

export interface TestNode {
  io: Server;
  port: number;
  presence: Presence;
  close(): Promise<void>;
}

/** A real Socket.IO server with presence on a loopback port; the user id comes from `auth.userId`. */
export async function startNode(
  options: Partial<PresenceOptions> & Pick<PresenceOptions, "store">,
  serverOptions: Partial<ServerOptions> = {},
): Promise<TestNode> {
  const http = createServer();
  const io = new Server(http, serverOptions);
  const presence = createPresence(io, {
    identify: (socket) => {
      const { userId, info } = socket.handshake.auth as { userId?: string; info?: Record<string, unknown> };
      return info ? { id: userId ?? "", info } : userId;
    },
    leaveDelayMs: 0,
    rooms: (room) => room.startsWith("room-"),
    ...options,
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = (http.address() as AddressInfo).port;
  return {
    io,
    port,
    presence,
    async close() {
      io.disconnectSockets(true);
      await presence.close();
      await new Promise<void>((resolve) => io.close(() => resolve()));
    },
  };
}

/** A real socket.io-client connection over WebSocket; resolves once connected. */
export function connectClient(
  port: number,
  auth: Record<string, unknown>,
  options: Partial<ManagerOptions & SocketOptions> = {},
): Promise<ClientSocket> {
  const socket = connect(`http://127.0.0.1:${port}`, { auth, forceNew: true, reconnection: false, transports: ["websocket"], ...options });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connect to port ${port} within 10 s`)), 10_000);
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

import { sleep } from "@presence/core/testing";

export { sleep, waitFor } from "@presence/core/testing";

export const sorted = (ids: Iterable<string>) => [...ids].sort();
