import { waitFor } from "@presence/core/testing";
import { Agent, createServer } from "node:http";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { StickyError, setupMaster, setupWorker, workerIdOfSession } from "../src/index";
import { nextEvent, send, startCluster, whoami, type StickyCluster } from "./sticky-fixture";

// The behaviours of @socket.io/sticky's own test suite (test/index.js and its
// fixtures), on real cluster workers and real Socket.IO clients, and what
// this fork adds: session ids naming their worker, a dead worker's sessions.

let running: StickyCluster | undefined;
const start = async (env: Record<string, string> = {}) => (running = await startCluster(env));
afterEach(async () => {
  await running?.close();
  running = undefined;
});

/** upstream's connection.js: connect, reconnect twice, echo a string and a 1 MB binary payload. */
async function roundTrips(socket: ClientSocket, what: string) {
  await nextEvent(socket, "connect", `${what}: first connect`);
  for (const round of [1, 2]) {
    socket.disconnect().connect();
    await nextEvent(socket, "connect", `${what}: reconnect ${round}`);
  }
  socket.emit("foo", "hello");
  expect(await nextEvent(socket, "bar", `${what}: the echo of "hello"`)).toBe("hello");
  const payload = Buffer.alloc(1e6, 7);
  socket.emit("foo", payload);
  const echoed = await nextEvent<Buffer>(socket, "bar", `${what}: the echo of 1 MB`, 20_000);
  expect(Buffer.from(echoed).equals(payload)).toBe(true);
}

describe("load balancing methods (3 workers)", () => {
  for (const method of ["least-connection", "round-robin", "random"]) {
    it(`works with ${method}`, async () => {
      const cluster = await start({ LB_METHOD: method });
      await roundTrips(cluster.connect(), method);
    });
  }

  it("round-robin gives each worker its turn", async () => {
    const cluster = await start({ LB_METHOD: "round-robin" });
    const seen = new Map<number, number>();
    for (let i = 0; i < 6; i++) {
      const socket = cluster.connect({ transports: ["polling"] });
      await nextEvent(socket, "connect", `round-robin client ${i}`);
      const { workerId } = await whoami(socket);
      seen.set(workerId, (seen.get(workerId) ?? 0) + 1);
    }
    expect([...seen.values()]).toEqual([2, 2, 2]);
  });

  it("least-connection sends a new session to the worker with the fewest", async () => {
    const cluster = await start({ LB_METHOD: "least-connection" });
    const workers = new Set<number>();
    for (let i = 0; i < 3; i++) {
      const socket = cluster.connect({ transports: ["polling"] });
      await nextEvent(socket, "connect", `least-connection client ${i}`);
      workers.add((await whoami(socket)).workerId);
    }
    expect(workers.size).toBe(3);
  });

  it("refuses a method it does not know, with a typed error", () => {
    const attempt = () => setupMaster(createServer(), { loadBalancingMethod: "fastest" as never });
    expect(attempt).toThrow(StickyError);
    expect(attempt).toThrow(/loadBalancingMethod/);
  });
});

describe("transports", () => {
  it("works with WebSocket only", async () => {
    const cluster = await start();
    await roundTrips(cluster.connect({ transports: ["websocket"] }), "websocket");
  });

  it("works with HTTP long-polling only (requests with a body are relayed by the primary)", async () => {
    const cluster = await start();
    await roundTrips(cluster.connect({ transports: ["polling"] }), "polling");
  });

  it("upgrades a polling session to WebSocket on the same worker", async () => {
    const cluster = await start({ LB_METHOD: "round-robin" });
    const socket = cluster.connect({ transports: ["polling", "websocket"] });
    await nextEvent(socket, "connect", "polling + websocket");
    const before = await whoami(socket);
    if (socket.io.engine.transport.name !== "websocket") await nextEvent(socket.io.engine as never, "upgrade", "the upgrade to WebSocket");
    expect(socket.io.engine.transport.name).toBe("websocket");
    expect(await whoami(socket)).toEqual(before);
  });

  it("works with the default JSON serialization of IPC too", async () => {
    const cluster = await start({ SERIALIZATION: "json" });
    await roundTrips(cluster.connect({ transports: ["polling"] }), "polling over JSON IPC");
    await roundTrips(cluster.connect({ transports: ["websocket"] }), "websocket over JSON IPC");
  });
});

describe("sticky sessions", () => {
  it("keeps every request of a polling session on its worker", async () => {
    const cluster = await start({ LB_METHOD: "round-robin" });
    const sockets = Array.from({ length: 3 }, () => cluster.connect({ transports: ["polling"] }));
    await Promise.all(sockets.map((socket, i) => nextEvent(socket, "connect", `polling client ${i}`)));
    for (const socket of sockets) {
      const first = await whoami(socket);
      for (let i = 0; i < 5; i++) expect(await whoami(socket)).toEqual(first);
    }
  });

  it("gives each session an id that starts with its worker's id", async () => {
    const cluster = await start({ LB_METHOD: "round-robin" });
    for (let i = 0; i < 3; i++) {
      const socket = cluster.connect({ transports: ["polling"] });
      await nextEvent(socket, "connect", `client ${i}`);
      const { workerId, sid } = await whoami(socket);
      expect(sid).toHaveLength(20);
      expect(workerIdOfSession(sid)).toBe(workerId);
    }
  });

  it("routes a request by its session id, not by the connection it came on (keep-alive, upstream's failing.js)", async () => {
    const cluster = await start({ LB_METHOD: "round-robin" });
    const [agent1, agent2] = [new Agent({ keepAlive: true }), new Agent({ keepAlive: true })];
    try {
      const res1 = await send({ agent: agent1, port: cluster.port, method: "GET", path: "/socket.io/?EIO=4&transport=polling" });
      expect(res1.statusCode).toBe(200);
      expect(res1.headers.connection).toBe("close");
      const sid = (JSON.parse(res1.body.slice(1)) as { sid: string }).sid;
      const res2 = await send({ agent: agent2, port: cluster.port, method: "GET", path: "/socket.io/?EIO=4&transport=polling" });
      expect(res2.statusCode).toBe(200);
      // upstream 1.x answered 400 "Session ID unknown": agent2's kept-alive connection belonged to the other worker
      const res3 = await send({ agent: agent2, port: cluster.port, method: "POST", path: `/socket.io/?EIO=4&transport=polling&sid=${sid}` }, "40");
      expect(res3.statusCode).toBe(200);
      expect(res3.body).toBe("ok");
    } finally {
      agent1.destroy();
      agent2.destroy();
    }
  });

  it("works with CORS (a preflight reaches a worker)", async () => {
    const cluster = await start();
    const res = await send({ port: cluster.port, method: "OPTIONS", path: "/socket.io/", headers: { origin: "https://example.com" } });
    expect(res.statusCode).toBe(204);
    expect(res.headers["access-control-allow-origin"]).toBe("https://example.com");
  });
});

describe("workers that die, or none at all", () => {
  it("moves a dead worker's clients to the survivors and sends it no new ones", async () => {
    const cluster = await start({ LB_METHOD: "round-robin" });
    const socket = cluster.connect({ transports: ["polling"], reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500 });
    await nextEvent(socket, "connect", "the client before the kill");
    const victim = await whoami(socket);
    process.kill(victim.pid, "SIGKILL");
    await waitFor(`the primary to see worker ${victim.workerId} exit`, () => cluster.exited.includes(victim.workerId), 10_000);
    await nextEvent(socket, "connect", "the reconnect after the kill", 20_000);
    expect((await whoami(socket)).workerId).not.toBe(victim.workerId);
    for (let i = 0; i < 4; i++) {
      const fresh = cluster.connect({ transports: [i % 2 ? "websocket" : "polling"] });
      await nextEvent(fresh, "connect", `new client ${i} after the kill`);
      expect((await whoami(fresh)).workerId).not.toBe(victim.workerId);
    }
    // the old session's id names the dead worker: a survivor answers, instead of the request hanging
    const stale = await send({ port: cluster.port, method: "GET", path: `/socket.io/?EIO=4&transport=polling&sid=${victim.sid}` });
    expect(stale.statusCode).toBe(400);
  });

  it("answers 503 when no worker is available (polling)", async () => {
    const cluster = await start({ WORKERS: "0" });
    const socket = cluster.connect({ transports: ["polling"] });
    await nextEvent(socket, "connect_error", "the refused polling handshake");
    const res = await send({ port: cluster.port, method: "GET", path: "/socket.io/?EIO=4&transport=polling" });
    expect(res.statusCode).toBe(503);
  });

  it("answers 503 when no worker is available (websocket)", async () => {
    const cluster = await start({ WORKERS: "0" });
    const socket = cluster.connect({ transports: ["websocket"] });
    await nextEvent(socket, "connect_error", "the refused WebSocket handshake");
    expect(socket.connected).toBe(false);
  });
});

describe("the wrong process", () => {
  it("setupWorker in the primary throws NOT_WORKER", () => {
    expect(() => setupWorker({} as never)).toThrow(expect.objectContaining({ name: "StickyError", code: "NOT_WORKER" }));
  });

  it("setupMaster in a worker throws NOT_PRIMARY", async () => {
    const cluster = await start({ WORKERS: "1" });
    expect(cluster.workers.map((worker) => worker.setupMasterError)).toEqual(["NOT_PRIMARY"]);
  });
});
