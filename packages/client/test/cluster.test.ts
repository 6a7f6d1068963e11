import { MemoryStore } from "@presence/memory";
import { RESYNC } from "@presence/socketio";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { createPresenceClient, type PresenceClient } from "../src";
import { connectClient, createBus, shareStore, sorted, startNode, waitFor, type TestNode } from "./harness";

const ids = (client: PresenceClient) => sorted(client.list().map((u) => u.userId));

/** Store users, flattened. */
async function storeUsers(store: MemoryStore, room?: string): Promise<string[]> {
  const users: string[] = [];
  for await (const page of room === undefined ? store.users() : store.roomUsers(room)) users.push(...page.map((u) => u.userId));
  return sorted(users);
}

describe("@presence/client across three servers sharing one store through an adapter", () => {
  const nodes: TestNode[] = [];
  const sockets: ClientSocket[] = [];

  const cluster = async (tickMs: number, nodeHeartbeatMs = 2000) => {
    const store = new MemoryStore();
    const bus = createBus();
    const stores = shareStore(store, 3);
    for (const shared of stores) {
      const n = await startNode({ store: shared, sync: { tickMs, nodeHeartbeatMs } }, { adapter: bus.adapter as never });
      n.io.on("connection", (socket) => {
        socket.on("join", (room: string, ack: () => void) => void Promise.resolve(socket.join(room)).then(ack));
      });
      nodes.push(n);
    }
    return { store, bus, nodes: [...nodes] };
  };
  const user = async (n: TestNode, userId: string) => {
    const socket = await connectClient(n.port, { userId });
    sockets.push(socket);
    return socket;
  };

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await Promise.allSettled(nodes.splice(0).map((n) => n.close()));
  });

  it("converges every client's view on the store's users after a storm of joins and leaves", async () => {
    const { store, nodes: [a, b, c] } = await cluster(50);
    const servers = [a!, b!, c!];
    const observers = await Promise.all(servers.map((n, i) => user(n, `observer-${i}`)));
    const events: Array<[string, string]> = [];
    observers[0]!.on("user has connected", (userId: string) => events.push([userId, "+"]));
    observers[0]!.on("user has disconnected", (userId: string) => events.push([userId, "-"]));
    // a room is followed by its members (the default authorize)
    await Promise.all(observers.map((socket) => socket.timeout(10_000).emitWithAck("join", "room-storm")));
    const views = observers.map((socket) => createPresenceClient(socket));
    const rooms = observers.map((socket) => createPresenceClient(socket, { room: "room-storm" }));
    const counts = observers.map((socket) => createPresenceClient(socket, { countOnly: true }));
    await waitFor("the first states", () => views.forEach((view) => expect(view.synced).toBe(true)));

    // a storm: 60 users over the three nodes, some with a second tab elsewhere, half of them in a room
    const open = new Map<string, ClientSocket[]>();
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const userId = `user-${i}`;
        const tabs = [await user(servers[i % 3]!, userId)];
        if (i % 4 === 0) tabs.push(await user(servers[(i + 1) % 3]!, userId));
        if (i % 2 === 0) await tabs[0]!.timeout(10_000).emitWithAck("join", "room-storm");
        open.set(userId, tabs);
      }),
    );
    // churn: a third leave for good, some close one tab of two, some come back on another node
    for (let i = 0; i < 60; i += 3) for (const tab of open.get(`user-${i}`)!) tab.close();
    for (let i = 1; i < 60; i += 6) {
      open.get(`user-${i}`)![0]!.close();
      await user(servers[(i + 2) % 3]!, `user-${i}`);
    }

    // quiescence: the store holds what the clients did, and every node flushed what it decided
    const online = sorted(Array.from({ length: 60 }, (_, i) => i).filter((i) => i % 3 !== 0).map((i) => `user-${i}`));
    const everyone = sorted([...online, "observer-0", "observer-1", "observer-2"]);
    await waitFor("the store to hold every transition", async () => expect(await storeUsers(store)).toEqual(everyone), 20_000);
    await Promise.all(servers.map((n) => n.presence.sync!.flush()));
    const room = await storeUsers(store, "room-storm");
    expect(room).toEqual(sorted([...online.filter((u) => Number(u.slice(5)) % 2 === 0), "observer-0", "observer-1", "observer-2"]));
    await waitFor(
      "every view to equal the store's users",
      () => {
        for (const view of views) expect(ids(view)).toEqual(everyone);
        for (const view of rooms) expect(ids(view)).toEqual(room);
        for (const count of counts) expect(count.count).toBe(everyone.length);
      },
      20_000,
    );
    // the per-user events: once per transition, in order, for every user (never coalesced)
    await waitFor("the per-user events to settle", () => {
      for (let i = 0; i < 60; i++) {
        const userId = `user-${i}`;
        const seen = events.filter(([u]) => u === userId).map(([, change]) => change).join("");
        expect(seen, userId).toMatch(online.includes(userId) ? /^(\+-)*\+$/ : /^(\+-)+$/);
      }
    });
  });

  it("keeps a count followed on one node right when the users come and go on the others", async () => {
    const { nodes: [a, b, c] } = await cluster(50);
    const observer = await user(c!, "observer");
    const count = createPresenceClient(observer, { countOnly: true });
    await waitFor("the count's state", () => expect(count.count).toBe(1));
    const alice = await user(a!, "alice");
    await user(b!, "bob");
    await waitFor("the count after two joins elsewhere", () => expect(count.count).toBe(3));
    alice.close();
    await waitFor("the count after a leave elsewhere", () => expect(count.count).toBe(2));
  });

  it("reads the state again when a transition was lost on the way between nodes", async () => {
    const { bus, nodes: [a, b] } = await cluster(50);
    const observer = await user(b!, "observer");
    const online = createPresenceClient(observer);
    await waitFor("the state", () => expect(ids(online)).toEqual(["observer"]));
    const first = await user(a!, "first");
    await waitFor("first listed", () => expect(ids(online)).toEqual(["first", "observer"]));
    // the next transition relayed to b is lost: "lost" joins, and b hears nothing of it
    let dropped = 0;
    bus.drop = ({ data }) => JSON.stringify(data ?? "").includes("presence:relay:transition") && dropped++ === 0;
    await user(a!, "lost");
    await waitFor("the relay to be dropped", () => expect(dropped).toBeGreaterThan(0));
    first.close(); // the next relayed transition's number shows the gap
    await waitFor("the resync after the gap", () => expect(ids(online)).toEqual(["lost", "observer"]));
  });

  it("resyncs the survivors' subscribers when a node is cut off with transitions it had not relayed", async () => {
    const { bus, nodes: [a, b] } = await cluster(50, 100); // a node silent for 300 ms is dead
    const observer = await user(b!, "observer");
    const online = createPresenceClient(observer);
    await waitFor("the state", () => expect(ids(online)).toEqual(["observer"]));
    let resyncs = 0;
    observer.on(RESYNC, () => resyncs++);
    bus.kill(a!.io.of("/"));
    await user(a!, "unrelayed"); // decided through a, which reaches no other node any more
    await waitFor("the join decided", () => expect(a!.presence.store.isUserConnected("unrelayed")).resolves.toBe(true));
    await waitFor("the resync after a went silent", () => expect(ids(online)).toEqual(["observer", "unrelayed"]));
    expect(resyncs).toBeGreaterThanOrEqual(1);
  });
});
