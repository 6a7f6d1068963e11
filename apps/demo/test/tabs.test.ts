import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connectClient, eventually, login, metric, startDemo, type DemoProcess } from "./demo-process";

/** What one connection went through: its evictions (the reason sent) and its disconnect. */
function follow(socket: ClientSocket): { evicted: string[]; disconnected: string[] } {
  const seen = { evicted: [] as string[], disconnected: [] as string[] };
  socket.on("presence:evicted", ({ reason }: { reason: string }) => seen.evicted.push(reason));
  socket.on("disconnect", (reason) => seen.disconnected.push(reason));
  return seen;
}

/** The WebSocket under a client (socket.io-client's Node transport), to cut it without a goodbye. */
const webSocketOf = (socket: ClientSocket) => (socket.io.engine.transport as unknown as { ws: { terminate(): void } }).ws;

/**
 * A client dropped right after its CONNECT: its engine opens, the client
 * writes the Socket.IO CONNECT (with the token), and the connection is cut on
 * the next turn, before the server's answer can arrive. Resolves once cut.
 */
async function dropAfterConnect(url: string, token: string): Promise<void> {
  const { io } = await import("socket.io-client");
  const socket = io(url, { auth: { token }, forceNew: true, reconnection: false, transports: ["websocket"] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`a client of ${url} did not open its engine within 10 s`)), 10_000);
    // after the socket's own "open" listener, which writes the CONNECT packet
    socket.io.once("open", () =>
      setImmediate(() => {
        clearTimeout(timer);
        webSocketOf(socket).terminate();
        resolve();
      }),
    );
  });
  socket.close();
}

for (const mode of ["standalone", "cluster"] as const) {
  describe(`tab slots (${mode} mode): one per open connection, the newest wins`, () => {
    let demo: DemoProcess;
    const clients: ClientSocket[] = [];
    const open = async (token: string, transports = ["websocket"]) => {
      const socket = await connectClient(demo.url, token, { transports });
      clients.push(socket);
      return socket;
    };

    beforeAll(async () => {
      const workers = mode === "cluster" ? ["--workers", "2"] : [];
      demo = await startDemo(["--mode", mode, ...workers, "--max-connections-per-user", "2", "--leave-delay-ms", "0", "--metrics-port", "0", "--log-level", "warn"]);
    });
    afterEach(() => {
      for (const socket of clients.splice(0)) socket.close();
    });
    afterAll(async () => {
      expect(await demo.stop()).toBe(0);
    });

    /** Waits until the server holds no Socket.IO connection any more (the gauge counts every worker's). */
    const quiet = () => eventually(async () => expect(await metric(demo, "presence_connections")).toBe(0), 10_000, "no connection left open");

    it("disconnects the oldest connection of a user over the cap, with a reason, and keeps the newest", async () => {
      const evictedBefore = await metric(demo, "presence_evicted_connections_total");
      const token = await login(demo.url, "tabby");
      // one at a time, so the cluster's balancer spreads them over both workers
      const tabs: ClientSocket[] = [];
      for (const transports of [["websocket"], ["polling"]]) tabs.push(await open(token, transports));
      const [first, second] = tabs.map(follow) as [ReturnType<typeof follow>, ReturnType<typeof follow>];
      const bystander = follow(await open(await login(demo.url, "bystander")));

      tabs.push(await open(token, ["websocket"]));
      await eventually(() => expect(first.disconnected).toEqual(["io server disconnect"]), 10_000, "the oldest tab disconnected");
      expect(first.evicted).toEqual(["too many connections"]); // told why, before the disconnect
      expect(tabs.map((tab) => tab.connected)).toEqual([false, true, true]);

      tabs.push(await open(token, ["polling"]));
      await eventually(() => expect(second.disconnected).toEqual(["io server disconnect"]), 10_000, "the second-oldest tab disconnected");
      expect(second.evicted).toEqual(["too many connections"]);
      expect(tabs.map((tab) => tab.connected)).toEqual([false, false, true, true]);
      expect(await metric(demo, "presence_evicted_connections_total")).toBe(evictedBefore + 2);
      expect(bystander).toEqual({ evicted: [], disconnected: [] });
      for (const socket of clients.splice(0)) socket.close();
      await quiet();
    });

    it("gives a slot back however the connection closed: dropped right after CONNECT, cut, or closed", async () => {
      await quiet();
      const evictedBefore = await metric(demo, "presence_evicted_connections_total");
      const token = await login(demo.url, "flaky");
      for (let i = 0; i < 10; i++) await dropAfterConnect(demo.url, token);
      for (let i = 0; i < 5; i++) webSocketOf(await connectClient(demo.url, token, { transports: ["websocket"] })).terminate();
      for (let i = 0; i < 5; i++) (await connectClient(demo.url, token, { transports: ["polling"] })).close();
      await quiet();

      // had any of those kept its slot, these would push it out: an eviction counted
      const tabs = [await open(token), await open(token, ["polling"])];
      const [first] = tabs.map(follow);
      expect(await metric(demo, "presence_evicted_connections_total")).toBe(evictedBefore);
      tabs.push(await open(token));
      await eventually(() => expect(first!.disconnected).toEqual(["io server disconnect"]), 10_000, "the oldest of the honest tabs disconnected");
      expect(await metric(demo, "presence_evicted_connections_total")).toBe(evictedBefore + 1);
      expect(tabs.map((tab) => tab.connected)).toEqual([false, true, true]);
    });
  });
}
