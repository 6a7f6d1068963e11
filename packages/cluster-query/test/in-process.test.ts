import { describePresenceStore, eventually } from "@presence/core/testing";
import { createPresence, type Presence } from "@presence/socketio";
import { Server } from "socket.io";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { NodesUnresponsiveError, createClusterQueryStore, type ClusterQueryStore } from "../src";
import { createBus, startNode } from "./in-process-cluster";

describePresenceStore("cluster-query (a single node)", {
  create: () => createClusterQueryStore(new Server()),
  numRuns: 50,
});


describe("cluster-query across 3 nodes in one process", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function cluster(nodeCount: number, heartbeatTimeout = 400) {
    const bus = createBus({ heartbeatInterval: 100, heartbeatTimeout });
    const nodes: Array<{ io: Server; port: number; store: ClusterQueryStore; presence: Presence }> = [];
    for (let i = 0; i < nodeCount; i++) {
      const { io, port } = await startNode(bus);
      const store = createClusterQueryStore(io);
      const presence = createPresence(io, { store, identify: (socket) => socket.handshake.auth.userId });
      nodes.push({ io, port, store, presence });
      cleanup.push(() => new Promise<void>((resolve) => io.close(() => resolve())), () => presence.close());
    }
    // every node has heard every other's heartbeat
    await eventually(async () => {
      for (const node of nodes) expect(await node.io.of("/").adapter.serverCount()).toBe(nodeCount);
    });
    return { bus, nodes };
  }

  const client = (port: number, userId: string) => {
    const socket: ClientSocket = connect(`http://127.0.0.1:${port}`, {
      auth: { userId },
      forceNew: true,
      reconnection: false,
      transports: ["websocket"],
    });
    cleanup.push(() => socket.close());
    return new Promise<ClientSocket>((resolve, reject) => {
      socket.once("connect", () => resolve(socket));
      socket.once("connect_error", reject);
    });
  };

  it("answers every query from any node, counting a user once across nodes", async () => {
    const { nodes } = await cluster(3);
    await client(nodes[0]!.port, "alice");
    await client(nodes[1]!.port, "alice");
    await client(nodes[1]!.port, "bob");
    await client(nodes[2]!.port, "carol");
    for (const { store } of nodes) {
      await eventually(async () => expect(await store.usersCount()).toBe(3));
      expect((await store.usersList()).sort()).toEqual(["alice", "bob", "carol"]);
      expect(await store.isUserConnected("bob")).toBe(true);
      expect(await store.isUserConnected("dave")).toBe(false);
    }
    const { value } = await nodes[2]!.store.snapshot();
    expect(Object.fromEntries(value.map((u) => [u.userId, u.connections]))).toEqual({ alice: 2, bob: 1, carol: 1 });
  });

  it("announces a user joining on a second node as no transition", async () => {
    const { nodes } = await cluster(3);
    const events: string[] = [];
    for (const { presence } of nodes) {
      presence.on("connected", (u) => events.push(`+${u}`));
      presence.on("disconnected", (u) => events.push(`-${u}`));
    }
    const first = await client(nodes[0]!.port, "alice");
    await eventually(() => expect(events).toEqual(["+alice"]));
    const second = await client(nodes[2]!.port, "alice");
    await new Promise((r) => setTimeout(r, 100));
    first.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toEqual(["+alice"]);
    second.close();
    await eventually(() => expect(events).toEqual(["+alice", "-alice"]));
  });

  it("tracks rooms and info across nodes, a user counted once per room", async () => {
    const { nodes } = await cluster(3);
    const a = await client(nodes[0]!.port, "alice");
    const b = await client(nodes[1]!.port, "alice");
    expect(await nodes[0]!.store.join(a.id!, "lobby")).toBe(true);
    expect(await nodes[1]!.store.join(b.id!, "lobby")).toBe(false); // already in it through node 0
    expect(await nodes[2]!.store.isUserInRoom("alice", "lobby")).toBe(true);
    expect(await nodes[2]!.store.roomUsersCount("lobby")).toBe(1);
    const { value } = await nodes[2]!.store.roomSnapshot("lobby");
    expect(value).toEqual([{ userId: "alice", connections: 2 }]);
    expect(await nodes[1]!.store.leave(b.id!, "lobby")).toBe(false); // still in the lobby on node 0
    expect(await nodes[0]!.store.leave(a.id!, "lobby")).toBe(true);
    expect(await nodes[2]!.store.roomUsersCount("lobby")).toBe(0);

    const carol = await client(nodes[2]!.port, "carol");
    await nodes[2]!.store.updateInfo("carol", { status: "away" });
    expect(await nodes[0]!.store.userInfo("carol")).toEqual({ status: "away" });
    expect(await nodes[0]!.store.updateInfo("carol", { status: "back" })).toBe(true);
    expect(await nodes[1]!.store.userInfo("carol")).toEqual({ status: "back" });
    expect(await nodes[1]!.store.updateInfo("nobody", { status: "?" })).toBe(false);
    carol.close();
  });

  it("never hangs on a node that stops answering: typed error, or a partial answer when asked", async () => {
    // the adapter takes 7 s to give up on a silent node; its requests time out after 5 s
    const { bus, nodes } = await cluster(3, 7000);
    await client(nodes[0]!.port, "alice");
    await client(nodes[1]!.port, "bob");
    await client(nodes[2]!.port, "carol");
    await eventually(async () => expect(await nodes[0]!.store.usersCount()).toBe(3));

    const victim = [...bus.members].find((m) => m.nsp === nodes[2]!.io.of("/").adapter.nsp)!;
    victim.dead = true; // no goodbye: as if killed

    // answered by the store's own request timeout (5 s), before the adapter drops the node (7 s):
    // `expected` still counts the silent node, so this is not the adapter giving up
    let timer: NodeJS.Timeout | undefined;
    const error = await Promise.race([
      nodes[0]!.store.usersList().catch((e: unknown) => e),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("timed out after 15000 ms waiting for usersList() to settle with a node silent")), 15_000))),
    ]).finally(() => clearTimeout(timer));
    expect(error).toBeInstanceOf(NodesUnresponsiveError);
    expect((error as NodesUnresponsiveError).missing).toBe(1);
    expect((error as NodesUnresponsiveError).expected).toBe(2);

    const partial = await nodes[0]!.store.snapshot({ allowPartial: true });
    expect(partial.partial).toBe(true);
    expect(partial.missingNodes).toBe(1);
    expect(partial.value.map((u) => u.userId).sort()).toEqual(["alice", "bob"]);

    // once the adapter drops the silent node, answers are whole again and its users are gone
    await eventually(async () => expect((await nodes[0]!.store.usersList()).sort()).toEqual(["alice", "bob"]), 10_000);
  }, 30_000);
});
