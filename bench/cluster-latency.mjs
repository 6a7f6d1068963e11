// 3. (child process) Single-user presence across 4 Node cluster workers:
// isUserConnected latency with cluster-query and with @presence/cluster (one
// round trip to the primary) vs the recipe's io.in(userId).fetchSockets().
// Prints one JSON line with the latencies: { clusterQuery, clusterStore, fetchSockets }.
import cluster from "node:cluster";
import { createServer } from "node:http";
import { createAdapter, setupPrimary } from "@socket.io/cluster-adapter";
import { createClusterQueryStore } from "@presence/cluster-query";
// by path: bench/package.json does not list @presence/cluster (yet); `pnpm bench` builds it first
import { createClusterStore, setupPrimary as setupPresencePrimary } from "@presence/cluster";
import { createPresence } from "@presence/socketio";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";

const WORKERS = 4;
const usersPerWorker = Number(process.env.USERS_PER_WORKER ?? 50);
const queries = Number(process.env.QUERIES ?? 500);

if (cluster.isPrimary) {
  setupPrimary();
  setupPresencePrimary(); // before forking: the workers' ClusterStore checks for it
  cluster.setupPrimary({ serialization: "advanced" });
  const workers = [];
  const ports = [];
  await new Promise((resolve) => {
    for (let i = 0; i < WORKERS; i++) {
      const worker = cluster.fork();
      workers.push(worker);
      worker.on("message", (m) => {
        if (m.type === "listening") {
          ports[i] = m.port;
          if (ports.filter(Boolean).length === WORKERS) resolve();
        }
      });
    }
  });
  await new Promise((r) => setTimeout(r, 500)); // let the adapters see each other
  const clients = [];
  for (let w = 0; w < WORKERS; w++) {
    for (let u = 0; u < usersPerWorker; u++) {
      const socket = connect(`http://127.0.0.1:${ports[w]}`, { auth: { userId: `w${w}-u${u}` }, transports: ["websocket"] });
      clients.push(new Promise((resolve) => socket.once("connect", () => resolve(socket))));
    }
  }
  const sockets = await Promise.all(clients);
  await new Promise((r) => setTimeout(r, 2000)); // let the joins' own queries and broadcasts drain
  const result = await new Promise((resolve) => {
    // (the adapters' own traffic passes through here too)
    workers[0].on("message", (m) => m?.clusterQuery && resolve(m));
    workers[0].send({ type: "measure", userId: `w${WORKERS - 1}-u0`, queries });
  });
  console.log(JSON.stringify(result));
  for (const socket of sockets) socket.close();
  for (const worker of workers) worker.kill();
  process.exit(0);
} else {
  const http = createServer();
  const io = new Server(http, { adapter: createAdapter() });
  const store = createClusterQueryStore(io);
  createPresence(io, { store, identify: (socket) => socket.handshake.auth.userId });
  io.on("connection", (socket) => socket.join(socket.handshake.auth.userId)); // the recipe's room per user
  // @presence/cluster, fed as its binding would feed it (the binding above already feeds cluster-query)
  const clusterStore = createClusterStore();
  io.on("connection", (socket) => {
    clusterStore.connect(socket.id, socket.handshake.auth.userId).catch(() => {});
    socket.on("disconnect", () => clusterStore.disconnect(socket.id).catch(() => {}));
  });
  process.on("message", async (message) => {
    if (message.type !== "measure") return;
    // warm up both paths (connections between the workers, JIT) before measuring
    for (let i = 0; i < 20; i++) {
      await store.isUserConnected(message.userId).catch(() => {});
      await io.in(message.userId).fetchSockets().catch(() => {});
      await clusterStore.isUserConnected(message.userId).catch(() => {});
    }
    const clusterQuery = [];
    const clusterStoreLatency = [];
    const fetchSockets = [];
    for (let i = 0; i < message.queries; i++) {
      let started = process.hrtime.bigint();
      const a = await store.isUserConnected(message.userId);
      clusterQuery.push(Number(process.hrtime.bigint() - started) / 1e6);
      started = process.hrtime.bigint();
      const b = (await io.in(message.userId).fetchSockets()).length > 0;
      fetchSockets.push(Number(process.hrtime.bigint() - started) / 1e6);
      started = process.hrtime.bigint();
      const c = await clusterStore.isUserConnected(message.userId);
      clusterStoreLatency.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (!a || !b || !c) throw new Error("the user should be online");
    }
    process.send({ clusterQuery, clusterStore: clusterStoreLatency, fetchSockets });
  });
  // exclusive: a worker of a cluster gets a port of its own, not the primary's shared one
  http.listen({ port: 0, host: "127.0.0.1", exclusive: true }, () => process.send({ type: "listening", port: http.address().port }));
}
