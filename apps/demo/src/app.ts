import cluster from "node:cluster";
import type { Server as HttpServer } from "node:http";
import type { PresenceStore } from "@presence/core";
import { createPresence, type Presence } from "@presence/socketio";
import type { FastifyInstance } from "fastify";
import { Server, type ServerOptions } from "socket.io";
import { CHANNEL_PREFIX } from "./channels";
import type { DemoConfig } from "./config";
import { connectionLimits, limitHandedConnections, limitServer } from "./connection-limits";
import { MAX_BODY_BYTES, createHttp } from "./http";
import type { DemoLimits } from "./limits";
import { DemoMetrics } from "./metrics";
import { handleSockets, limitAttempts } from "./sockets";
import type { TabSlots } from "./tabs";
import { TokenSigner } from "./token";

/** How long a stopping server lets the HTTP requests in flight finish before it closes their connections. */
const SHUTDOWN_GRACE_MS = 2000;

export interface DemoApp {
  http: HttpServer;
  fastify: FastifyInstance;
  io: Server;
  /** Undefined when presence is off (`--presence off`). */
  presence: Presence | undefined;
  close(): Promise<void>;
}

export interface DemoAppOptions {
  config: DemoConfig;
  /** Makes the store, given the Socket.IO server (the cluster-query store needs it). */
  createStore: (io: Server) => PresenceStore;
  serverOptions?: Partial<ServerOptions>;
  limits: DemoLimits;
  /** The users' tab slots; `undefined` without a cap. */
  tabs: TabSlots | undefined;
  /** Problems that make this process degraded (Redis lost), for `/api/health`. */
  problems?: () => string[];
  /** Registers a callback for when the link between nodes is back after an outage (see `ModeParts`). */
  onRecovered?: (listener: () => void) => void;
  /** Releases what the store and adapter opened, after the server is closed. */
  close?: () => Promise<void>;
}

/** The demo: HTTP on Fastify, Socket.IO attached to its server, presence on whatever store the mode chose. */
export async function createDemoApp({
  config,
  createStore,
  serverOptions,
  limits,
  tabs,
  problems = () => [],
  onRecovered,
  close,
}: DemoAppOptions): Promise<DemoApp> {
  const signer = new TokenSigner(config.secret);
  let presence: Presence | undefined;
  const metrics = new DemoMetrics(
    () => presence,
    () => io.of("/").sockets.size,
  );
  const fastify = createHttp({ config, presence: () => presence, signer, limits, metrics, problems });
  // Socket.IO takes the /socket.io/ requests of Fastify's own server; everything else is Fastify's.
  // No message may exceed what HTTP bodies may: a token, a channel name and a little info fit many times over.
  const io = new Server(fastify.server, { maxHttpBufferSize: MAX_BODY_BYTES, ...serverOptions });
  // after Socket.IO: it takes over the server's request listeners, calling the earlier ones for other paths only.
  // A sticky worker's connections are handed to it by the primary, which Node's own limits never see.
  if (cluster.isWorker) limitHandedConnections(fastify.server, connectionLimits(config));
  else limitServer(fastify.server, connectionLimits(config));
  const parts = { io, config, signer, limits, metrics };

  limitAttempts(parts);
  if (config.presence) {
    presence = createPresence(io, {
      store: metrics.timed(createStore(io)),
      leaveDelayMs: config.leaveDelayMs,
      // a channel "general" is the Socket.IO room "channel:general": clients never name a raw room
      rooms: { prefix: CHANNEL_PREFIX },
      // every socket is signed in (identify refuses the rest) and the demo's channels are public:
      // a socket may follow every user, and any channel, a member or not
      authorize: () => true,
      identify: async (socket) => {
        const claims = await signer.verify(socket.handshake.auth?.token);
        return claims && { id: claims.sub, info: claims.info };
      },
    });
    metrics.observe(presence);
    const tracked = presence;
    // diffs sent while the adapter was down never arrived: this node's clients read their state again,
    // now and once the store has republished what it holds (within two heartbeats)
    onRecovered?.(() => {
      tracked.sync?.resync();
      setTimeout(() => tracked.sync?.resync(), 2 * config.heartbeatMs).unref();
    });
    presence.on("error", (error) => fastify.log.warn({ err: error }, "presence error"));
  }
  handleSockets({ ...parts, presence, tabs });
  await fastify.ready();

  return {
    http: fastify.server,
    fastify,
    io,
    presence,
    /** Disconnects every client, announces the leaves this causes, then closes the server. */
    async close() {
      // this node's transports only (disconnectSockets would reach every node through the adapter, and tell
      // the clients not to come back): its clients see "transport close" and reconnect elsewhere
      io.engine.close();
      await presence?.close();
      // a request in flight gets a moment to finish; then every connection left is closed, so that a stop is bounded
      const server = fastify.server;
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS).unref();
      try {
        await new Promise<void>((resolve) => io.close(() => resolve()));
        await fastify.close();
      } finally {
        clearTimeout(force);
      }
      await close?.();
    },
  };
}
