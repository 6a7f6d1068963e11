import { MemoryStore } from "@presence/memory";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { connectClient, eventually, recordEvents, sleep, startServer, type TestServer } from "./helpers";

/** Socket.IO's connection state recovery, as its own tutorial turns it on. */
const recovery = { connectionStateRecovery: { maxDisconnectionDuration: 60_000, skipMiddlewares: true } };

/** Cuts the client's transport (as a network drop does) and resolves once it is back, recovered or not. */
async function dropTransport(socket: ClientSocket): Promise<{ recovered: boolean }> {
  const back = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the client did not reconnect within 5 s after its transport was cut")), 5000);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  socket.io.engine.close();
  await back;
  return { recovered: socket.recovered };
}

describe("connection state recovery", () => {
  const servers: TestServer[] = [];
  const clients: ClientSocket[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.allSettled(servers.splice(0).map((s) => s.close()));
  });

  const setup = async (leaveDelayMs: number) => {
    const s = await startServer(
      { store: new MemoryStore(), leaveDelayMs, rooms: "room:", identify: (socket) => socket.handshake.auth.userId },
      recovery,
    );
    servers.push(s);
    s.io.on("connection", (socket) => {
      socket.on("join", (room: string, ack: () => void) => {
        void socket.join(room);
        ack();
      });
    });
    const observer = await connectClient(s.port, { userId: "observer" });
    clients.push(observer);
    const seen = recordEvents(observer);
    // reconnection on: recovery is the client reconnecting with its session id and offset
    const alice = await connectClient(s.port, { userId: "alice" }, { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100 });
    clients.push(alice);
    await eventually(() => expect(seen).toEqual(["+alice"]));
    return { s, seen, alice };
  };

  it("keeps a recovered socket counted, and a recovery inside the leave grace invisible", async () => {
    const { s, seen, alice } = await setup(1000);
    await alice.timeout(5000).emitWithAck("join", "room:lobby");
    await eventually(async () => expect(await s.presence.isUserInRoom("alice", "room:lobby")).toBe(true));

    const { recovered } = await dropTransport(alice);
    expect(recovered).toBe(true);
    await sleep(1300); // past the grace the drop started
    expect(seen).toEqual(["+alice"]);
    expect(await s.presence.isUserConnected("alice")).toBe(true);
    expect(await s.presence.usersCount()).toBe(2);
    expect(await s.presence.isUserInRoom("alice", "room:lobby")).toBe(true);

    alice.close();
    await eventually(() => expect(seen).toEqual(["+alice", "-alice"]), 5000);
    expect(await s.presence.isUserConnected("alice")).toBe(false);
  });

  it("counts a socket recovered after the grace again, with its rooms", async () => {
    const { s, seen, alice } = await setup(0);
    await alice.timeout(5000).emitWithAck("join", "room:lobby");
    await eventually(async () => expect(await s.presence.isUserInRoom("alice", "room:lobby")).toBe(true));

    const { recovered } = await dropTransport(alice);
    expect(recovered).toBe(true);
    // no grace: the drop was a real leave, and the recovery a real return
    await eventually(() => expect(seen).toEqual(["+alice", "-alice", "+alice"]));
    await eventually(async () => expect(await s.presence.isUserConnected("alice")).toBe(true));
    await eventually(async () => expect(await s.presence.isUserInRoom("alice", "room:lobby")).toBe(true));
    expect(s.presence.userIdOf(s.io.of("/").sockets.get(alice.id!)!)).toBe("alice");
  });
});

describe("connection state recovery on another node", () => {
  const servers: TestServer[] = [];
  const clients: ClientSocket[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.allSettled(servers.splice(0).map((s) => s.close()));
  });

  it("counts a socket that left one node and recovered on another under an id of the new node's, so the old node's leave does not uncount it", async () => {
    // one store whose connection ids span the deployment (as @presence/cluster's primary), two servers on it
    const store = new MemoryStore();
    const options = { store, leaveDelayMs: 1000, identify: (socket: { handshake: { auth: { userId?: string } } }) => socket.handshake.auth.userId };
    const a = await startServer(options, recovery);
    const b = await startServer(options, recovery);
    servers.push(a, b);
    // an adapter that keeps sessions for the deployment (the Redis Streams adapter, or the demo's cluster one):
    // here the two in-memory adapters share their sessions and packets
    const [adapterA, adapterB] = [a, b].map((s) => s.io.of("/").adapter as unknown as { sessions: unknown; packets: unknown });
    Object.assign(adapterB!, { sessions: adapterA!.sessions, packets: adapterA!.packets });

    const observer = await connectClient(b.port, { userId: "observer" });
    clients.push(observer);
    const seen = recordEvents(observer);
    const alice = await connectClient(a.port, { userId: "alice" }, { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100 });
    clients.push(alice);
    await eventually(() => expect(seen).toEqual(["+alice"]));
    a.io.to(alice.id!).emit("hello"); // a broadcast: the offset recovery starts from
    await eventually(() => expect(alice.recovered).toBe(false));
    await sleep(50);

    const id = alice.id;
    Object.assign(alice.io, { uri: `http://127.0.0.1:${b.port}` }); // the next connect reaches b
    const { recovered } = await dropTransport(alice);
    expect(recovered).toBe(true);
    expect(alice.id).toBe(id);
    expect(b.io.of("/").sockets.has(id!)).toBe(true);

    await sleep(1300); // past a's grace for the socket it lost
    expect(await store.isUserConnected("alice")).toBe(true);
    expect(seen).toEqual(["+alice"]);

    alice.close();
    await eventually(() => expect(seen).toEqual(["+alice", "-alice"]), 5000);
    expect(await store.isUserConnected("alice")).toBe(false);
  });
});
