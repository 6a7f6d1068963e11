import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { MemoryStore } from "@presence/memory";
import { DIFF, PROTOCOL_VERSION, STATE, SUBSCRIBE, unpackDiff, unpackState, type DiffFrame, type PackedDiff, type PackedState, type StateFrame, type SubscribeReply } from "@presence/socketio";
import { Server } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { PresenceClientError, createPresenceClient, type PresenceClient, type PresenceClientState } from "../src";
import { connectClient, sorted, startNode, waitFor, type TestNode } from "./harness";

const ids = (client: PresenceClient<object>) => sorted(client.list().map((u) => u.userId));

/** Records a client's state changes. */
const states = (client: PresenceClient<object>) => {
  const seen: PresenceClientState[] = [client.state];
  client.on("state", (state) => seen.push(state));
  return seen;
};

describe("@presence/client against one server", () => {
  const nodes: TestNode[] = [];
  const sockets: ClientSocket[] = [];
  const closers: Array<() => Promise<void> | void> = [];
  const node = async (...args: Parameters<typeof startNode>) => {
    const n = await startNode(...args);
    nodes.push(n);
    return n;
  };
  const user = async (port: number, userId: string, info?: Record<string, unknown>, options = {}) => {
    const socket = await connectClient(port, info ? { userId, info } : { userId }, options);
    sockets.push(socket);
    return socket;
  };
  const recordFrames = (socket: ClientSocket) => {
    const frames: { diffs: DiffFrame[]; states: StateFrame[] } = { diffs: [], states: [] };
    socket.on(DIFF, (tick: PackedDiff[]) => frames.diffs.push(...tick.map((packed) => unpackDiff(packed)!)));
    socket.on(STATE, (packed: PackedState) => frames.states.push(unpackState(packed)!));
    // a small state's last page comes in the subscribe's ack (a Socket.IO ACK packet, type 3)
    socket.io.on("packet", (packet: { type: number; data?: unknown[] }) => {
      const last = packet.type === 3 ? packet.data?.at(-1) : undefined;
      // one reply, or one per subscribe of a batch (protocol 6)
      for (const reply of (Array.isArray(last) ? last : [last]) as Array<SubscribeReply | undefined>) {
        if (reply?.ok && reply.state) frames.states.push(unpackState(reply.state)!);
      }
    });
    return frames;
  };

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await Promise.allSettled(nodes.splice(0).map((n) => n.close()));
    await Promise.allSettled(closers.splice(0).map((close) => close()));
  });

  it("reads the state, then applies the diffs, with join, leave, update, sync and state events", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    await user(n.port, "alice", { name: "Alice" });
    const bob = await user(n.port, "bob");
    const observer = await user(n.port, "observer");
    const online = createPresenceClient<{ name?: string; status?: string }>(observer);
    const seen = states(online);
    const events: string[] = [];
    let syncs = 0;
    online.on("join", ({ userId }) => events.push(`+${userId}${online.synced ? "" : " (state)"}`));
    online.on("leave", (userId) => events.push(`-${userId}`));
    online.on("update", ({ userId, info }) => events.push(`~${userId}:${info?.status ?? ""}`));
    online.on("sync", () => syncs++);
    await waitFor("the first state", () => expect(ids(online)).toEqual(["alice", "bob", "observer"]));
    expect(online.get("alice")).toEqual({ userId: "alice", info: { name: "Alice" } });
    expect([online.synced, online.state]).toEqual([true, "subscribed"]);
    expect(seen).toEqual(["subscribing", "subscribed"]);

    const list = online.list();
    expect(online.list()).toBe(list); // the same array until something changes

    await user(n.port, "carol", { name: "Carol" });
    await waitFor("carol's join", () => expect(ids(online)).toEqual(["alice", "bob", "carol", "observer"]));
    expect(online.list()).not.toBe(list);
    expect(online.get("carol")?.info).toEqual({ name: "Carol" });
    bob.close();
    await waitFor("bob's leave", () => expect(ids(online)).toEqual(["alice", "carol", "observer"]));
    await n.presence.updateInfo("alice", { name: "Alice", status: "away" });
    await waitFor("alice's update", () => expect(online.get("alice")?.info).toEqual({ name: "Alice", status: "away" }));
    expect(online.count).toBe(3);
    // the state's joins came before `synced`, the live ones after
    expect(sorted(events)).toEqual(sorted(["+alice (state)", "+bob (state)", "+observer (state)", "+carol", "-bob", "~alice:away"]));
    expect(syncs).toBe(4); // the state, carol, bob, alice: once per change of the view

    online.close();
    expect(online.state).toBe("closed");
    expect(seen.at(-1)).toBe("closed");
  });

  it("fires sync only when the view changed: a resync that reads the same state leaves the list as it was", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    await user(n.port, "alice");
    const observer = await user(n.port, "observer");
    const online = createPresenceClient(observer);
    await waitFor("the first state", () => expect(online.synced).toBe(true));
    const list = online.list();
    let syncs = 0;
    online.on("sync", () => syncs++);
    const seen = states(online);
    online.resync();
    n.presence.sync!.resync();
    await waitFor("two reads of the same state", () => expect(seen.filter((s) => s === "subscribed").length).toBeGreaterThanOrEqual(1));
    await waitFor("subscribed again", () => expect(online.state).toBe("subscribed"));
    expect(syncs).toBe(0);
    expect(online.list()).toBe(list);
  });

  it("numbers requests per socket: clients sharing a socket, or replaced on it, each read their own state", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    await user(n.port, "a");
    await user(n.port, "b");
    const observer = await user(n.port, "observer");
    const frames = recordFrames(observer);
    const first = createPresenceClient(observer, { userIds: ["a"] });
    first.close(); // replaced before its state came
    const second = createPresenceClient(observer, { userIds: ["b"] });
    const everyone = createPresenceClient(observer);
    await waitFor("both states", () => expect([second.synced, everyone.synced]).toEqual([true, true]));
    expect(ids(second)).toEqual(["b"]);
    expect(ids(everyone)).toEqual(["a", "b", "observer"]);
    expect(first.list()).toEqual([]);
    const requests = frames.states.map((s) => s.request);
    expect(new Set(requests).size).toBe(requests.length);
  });

  it("subscribes the views made in one turn in one packet, answered by one ack, and sends nothing for one closed in that turn", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    await user(n.port, "friend");
    const observer = await user(n.port, "observer");
    const subscribes: unknown[] = [];
    observer.onAnyOutgoing((event: string, request: unknown) => event === SUBSCRIBE && subscribes.push(request));
    const unsubscribes: unknown[] = [];
    observer.onAnyOutgoing((event: string, request: unknown) => event === "presence:unsubscribe" && unsubscribes.push(request));
    let acks = 0;
    observer.io.on("packet", (packet: { type: number }) => void (packet.type === 3 && acks++));
    const count = createPresenceClient(observer, { countOnly: true });
    const friends = createPresenceClient(observer, { userIds: ["friend", "nobody"] });
    const withdrawn = createPresenceClient(observer, { room: "lobby" });
    const everyone = createPresenceClient(observer);
    withdrawn.close();
    await waitFor("the three views", () => expect([count.synced, friends.synced, everyone.synced]).toEqual([true, true, true]));
    expect(subscribes).toEqual([{ v: PROTOCOL_VERSION, batch: [expect.objectContaining({ scope: { type: "count" } }), expect.objectContaining({ scope: { type: "users", userIds: ["friend", "nobody"] } }), expect.objectContaining({ scope: { type: "all" } })] }]);
    expect(unsubscribes).toEqual([]);
    expect(acks).toBe(1);
    expect([count.count, ids(friends), ids(everyone)]).toEqual([2, ["friend"], ["friend", "observer"]]);
    // one view alone subscribes as before, in the single form
    const again = createPresenceClient(observer, { userIds: ["observer"] });
    await waitFor("the fourth view", () => expect(again.synced).toBe(true));
    expect(subscribes[1]).toEqual({ v: PROTOCOL_VERSION, scope: { type: "users", userIds: ["observer"] }, request: expect.any(Number) });
  });

  it("tells the server when a client it follows closes in the turn of a resync, and sends nothing on a socket that disconnected", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    const observer = await user(n.port, "observer");
    const sent: string[] = [];
    observer.onAnyOutgoing((event: string) => sent.push(event));
    const online = createPresenceClient(observer);
    await waitFor("the state", () => expect(online.synced).toBe(true));
    online.resync(); // a subscribe waiting for the end of the turn, withdrawn by the close
    online.close();
    await waitFor("the unsubscribe", () => expect(sent).toEqual([SUBSCRIBE, "presence:unsubscribe"]));
    // a client made, then its socket disconnected, in one turn: no subscribe is buffered for the next connection
    const late = await user(n.port, "late");
    const lateSent: string[] = [];
    late.onAnyOutgoing((event: string) => lateSent.push(event));
    createPresenceClient(late, { countOnly: true });
    late.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(lateSent).toEqual([]);
    expect((late as unknown as { sendBuffer: unknown[] }).sendBuffer).toEqual([]);
  });

  it("follows a list of users: only their changes", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    const a = await user(n.port, "a");
    await user(n.port, "b");
    const observer = await user(n.port, "observer");
    const follows = createPresenceClient(observer, { userIds: ["a", "c"] });
    await waitFor("the list's state", () => expect(ids(follows)).toEqual(["a"]));
    await user(n.port, "c");
    await user(n.port, "d");
    await waitFor("c's join", () => expect(ids(follows)).toEqual(["a", "c"]));
    a.close();
    await waitFor("a's leave", () => expect(ids(follows)).toEqual(["c"]));
    expect(follows.get("d")).toBeUndefined();
  });

  it("keeps the count alone with countOnly", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    await user(n.port, "a");
    const observer = await user(n.port, "observer");
    const count = createPresenceClient(observer, { countOnly: true });
    let syncs = 0;
    count.on("sync", () => syncs++);
    await waitFor("the count's state", () => expect(count.count).toBe(2));
    const b = await user(n.port, "b");
    await waitFor("the count after b", () => expect(count.count).toBe(3));
    b.close();
    await waitFor("the count after b left", () => expect(count.count).toBe(2));
    expect(count.list()).toEqual([]);
    expect(syncs).toBe(3);
  });

  it("follows a room it is a member of; a refusal is a typed error, final, and leaves it unsubscribed", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    n.io.on("connection", (socket) => {
      socket.on("join", (room: string, ack: () => void) => void Promise.resolve(socket.join(room)).then(ack));
      socket.on("leave", (room: string, ack: () => void) => void Promise.resolve(socket.leave(room)).then(ack));
    });
    const alice = await user(n.port, "alice", { name: "Alice" });
    await alice.timeout(5000).emitWithAck("join", "room-1");
    const observer = await user(n.port, "observer");
    await observer.timeout(5000).emitWithAck("join", "room-1");
    const room = createPresenceClient(observer, { room: "room-1" });
    await waitFor("the room's state", () => expect(ids(room)).toEqual(["alice", "observer"]));
    expect(room.get("alice")?.info).toEqual({ name: "Alice" });
    const bob = await user(n.port, "bob");
    await bob.timeout(5000).emitWithAck("join", "room-1");
    await waitFor("bob in the room", () => expect(ids(room)).toEqual(["alice", "bob", "observer"]));
    await n.presence.updateInfo("alice", { name: "Alicia" });
    await waitFor("alice's update in the room", () => expect(room.get("alice")?.info).toEqual({ name: "Alicia" }));
    await alice.timeout(5000).emitWithAck("leave", "room-1");
    bob.close();
    await waitFor("the room emptied", () => expect(ids(room)).toEqual(["observer"]));

    const errors: PresenceClientError[] = [];
    const outside = createPresenceClient(observer, { room: "room-2" });
    const untracked = createPresenceClient(observer, { room: "lobby" });
    for (const client of [outside, untracked]) client.on("error", (error) => errors.push(error));
    await waitFor("both refusals", () => expect(errors).toHaveLength(2));
    expect(errors.every((error) => error instanceof PresenceClientError)).toBe(true);
    expect(sorted(errors.map((error) => `${error.code}:${error.reason}`))).toEqual(["FORBIDDEN:forbidden", "INVALID_SCOPE:rooms-disabled"]);
    expect([outside.state, untracked.state]).toEqual(["unsubscribed", "unsubscribed"]);
    // a member may subscribe again, by asking
    await observer.timeout(5000).emitWithAck("join", "room-2");
    outside.resync();
    await waitFor("room-2 followed once a member", () => expect(outside.state).toBe("subscribed"));
  });

  it("asks again, with backoff, when the server is rate limiting", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50, requestBurst: 1, requestsPerSecond: 2 } });
    const observer = await user(n.port, "observer");
    const errors: string[] = [];
    const clients = [createPresenceClient(observer, { retryDelayMs: 100 }), createPresenceClient(observer, { countOnly: true, retryDelayMs: 100 })];
    for (const client of clients) client.on("error", (error) => errors.push(error.reason));
    await waitFor("both subscribed in the end", () => expect(clients.map((c) => c.state)).toEqual(["subscribed", "subscribed"]));
    expect(errors).toContain("rate-limited");
    expect(ids(clients[0]!)).toEqual(["observer"]);
    expect(clients[1]!.count).toBe(1);
  });

  it("sets its user's info with update(), as the server's hook allows, and rejects with the typed error otherwise", async () => {
    const n = await node({
      store: new MemoryStore(),
      sync: { tickMs: 50 },
      clientUpdates: (_socket, info) => (info.status === "banned" ? false : { ...info, checked: true }),
    });
    const alice = await user(n.port, "alice", { name: "Alice" });
    const observer = await user(n.port, "observer");
    const online = createPresenceClient<{ name?: string; status?: string; checked?: boolean }>(observer);
    const self = createPresenceClient<{ name?: string; status?: string; checked?: boolean }>(alice, { userIds: ["alice"] });
    await waitFor("the states", () => expect([online.synced, self.synced]).toEqual([true, true]));
    await self.update({ name: "Alice", status: "away" });
    await waitFor("the update everywhere", () => {
      expect(online.get("alice")?.info).toEqual({ name: "Alice", status: "away", checked: true });
      expect(self.get("alice")?.info).toEqual({ name: "Alice", status: "away", checked: true });
    });
    const refused = await self.update({ status: "banned" }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(PresenceClientError);
    expect(refused).toMatchObject({ code: "FORBIDDEN", reason: "forbidden" });
    self.close();
    await expect(self.update({ status: "late" })).rejects.toMatchObject({ code: "CLIENT_CLOSED", reason: "closed" });
  });

  it("resubscribes and reads the state again after a reconnect, keeping the view meanwhile", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    const bob = await user(n.port, "bob");
    const observer = await user(n.port, "observer", undefined, { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    const online = createPresenceClient(observer);
    await waitFor("the first state", () => expect(ids(online)).toEqual(["bob", "observer"]));
    const seen = states(online);
    const during: string[][] = [];
    online.on("state", (state) => state === "subscribing" && during.push(ids(online)));
    // cut the transport: changes made meanwhile are only in the next state
    let reconnects = 0;
    observer.io.once("reconnect", () => reconnects++);
    observer.io.engine.close();
    bob.close();
    await user(n.port, "carol");
    await waitFor("the reconnect", () => expect(reconnects).toBe(1));
    await waitFor("the state after the reconnect", () => expect(ids(online)).toEqual(["carol", "observer"]));
    expect(seen.slice(0, 2)).toEqual(["subscribed", "subscribing"]);
    expect(seen.at(-1)).toBe("subscribed");
    expect(during[0]).toEqual(["bob", "observer"]); // the last view stays until the new state replaces it
    // and on the server's request
    n.presence.sync!.resync();
    await waitFor("still right after a requested resync", () => expect([online.state, ids(online)]).toEqual(["subscribed", ["carol", "observer"]]));
  });

  it("gets one packet per tick for every scope it follows; a frame of more than 16 changes comes on its own", async () => {
    // ticks are flushed by hand, so that what a tick holds does not depend on timing
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 600_000 } });
    n.io.on("connection", (socket) => {
      const { userId } = socket.handshake.auth as { userId: string };
      if (userId === "f1" || userId.startsWith("stranger")) void socket.join("room-1");
    });
    const observer = await user(n.port, "observer");
    await n.io.in(observer.id!).socketsJoin("room-1");
    const packets: DiffFrame[][] = [];
    observer.on(DIFF, (tick: PackedDiff[]) => packets.push(tick.map((packed) => unpackDiff(packed)!)));
    const count = createPresenceClient(observer, { countOnly: true });
    const friends = createPresenceClient(observer, { userIds: ["f1", "f2", "far"] });
    const room = createPresenceClient(observer, { room: "room-1" });
    await waitFor("three views subscribed", () => expect([count.synced, friends.synced, room.synced]).toEqual([true, true, true]));
    /** Flushes the tick once the server has heard `online` users, `inRoom` of them in the room; returns the packets it brought. */
    const tick = async (online: number, inRoom: number, views: () => void) => {
      await waitFor(`${online} online, ${inRoom} in the room`, async () =>
        expect([await n.presence.usersCount(), await n.presence.roomUsersCount("room-1")]).toEqual([online, inRoom]),
      );
      const before = packets.length;
      await n.presence.sync!.flush();
      await waitFor("the views after the tick", views);
      return packets.slice(before).map((frames) => frames.map((frame) => frame.key).sort());
    };
    // two friends connect, one into the room: one packet carries the count, the list and the room
    await Promise.all([user(n.port, "f1"), user(n.port, "f2")]);
    const first = await tick(3, 2, () => expect([count.count, ids(friends), ids(room)]).toEqual([3, ["f1", "f2"], ["f1", "observer"]]));
    expect(first).toEqual([["count", "room:room-1", "users"]]);
    // 20 strangers join the room at once: the room's frame (20 joins) is broadcast alone, the count rides in the socket's packet
    await Promise.all(Array.from({ length: 20 }, (_, i) => user(n.port, `stranger-${i}`)));
    const second = await tick(23, 22, () => expect([count.count, ids(friends), ids(room).length]).toEqual([23, ["f1", "f2"], 22]));
    expect(second.sort()).toEqual([["count"], ["room:room-1"]]);
    // a friend leaves and one stranger leaves the room: one packet again
    const f2 = sockets.find((socket) => (socket.auth as { userId: string }).userId === "f2")!;
    f2.close();
    await n.io.in(sockets.find((socket) => (socket.auth as { userId: string }).userId === "stranger-0")!.id!).socketsLeave("room-1");
    const third = await tick(22, 21, () => expect([count.count, ids(friends), ids(room).length]).toEqual([22, ["f1"], 21]));
    expect(third).toEqual([["count", "room:room-1", "users"]]);
  });

  it("applies the diffs that arrive while the state is read, and the state settles the order", async () => {
    const store = new MemoryStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let snapshots = 0;
    // the state is read at once but delivered only when the gate opens: later joins reach the client first, as diffs
    const slowStore = new Proxy(store, {
      get(target, property) {
        if (property === "users") {
          return (options?: { pageSize?: number }) =>
            (async function* () {
              const pages = [];
              for await (const page of target.users(options)) pages.push(page);
              snapshots++;
              await gate;
              yield* pages;
            })();
        }
        const value: unknown = Reflect.get(target, property);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const n = await node({ store: slowStore, sync: { tickMs: 30 } });
    const leaving = await user(n.port, "leaving");
    const observer = await user(n.port, "observer");
    const frames = recordFrames(observer);
    const online = createPresenceClient(observer);
    await waitFor("the state read", () => expect(snapshots).toBe(1));
    await user(n.port, "late");
    leaving.close();
    const changed = (kind: "joins" | "leaves") => frames.diffs.flatMap((d) => (d[kind] ?? []).map(([userId]) => userId));
    await waitFor("the diffs before the state", () => {
      expect(changed("joins")).toContain("late");
      expect(changed("leaves")).toContain("leaving");
    });
    expect(frames.states).toEqual([]);
    expect(online.synced).toBe(false);
    expect(ids(online).filter((u) => u !== "observer")).toEqual(["late"]); // applied as they came
    release();
    await waitFor("the state and the diffs", () => expect([online.synced, ids(online)]).toEqual([true, ["late", "observer"]]));
    // the state itself had leaving and not late: the versions settled it
    expect(sorted(frames.states.flatMap((s) => s.users ?? []).map(([userId]) => userId))).toEqual(["leaving", "observer"]);
  });
});

describe("@presence/client against a server that refuses for good", () => {
  it("raises a typed protocol-version error and does not ask again", async () => {
    // an older server, as a plain Socket.IO server answering the subscribe the way one would
    const http = createServer();
    const io = new Server(http);
    let asked = 0;
    io.on("connection", (socket) => {
      socket.on(SUBSCRIBE, (request: { v: number }, ack: (reply: SubscribeReply) => void) => {
        asked++;
        expect(request.v).toBe(PROTOCOL_VERSION);
        ack({ ok: false, error: { code: "INVALID_SCOPE", reason: "protocol-version", message: "this server speaks presence protocol 1" } });
      });
      socket.on("ping-after", (ack: () => void) => ack());
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const socket = await connectClient((http.address() as AddressInfo).port, { userId: "alice" });
    try {
      const client = createPresenceClient(socket, { retryDelayMs: 10 });
      const error = await new Promise<PresenceClientError>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no error event within 10 s")), 10_000);
        client.on("error", (error) => {
          clearTimeout(timer);
          resolve(error);
        });
      });
      expect(error).toBeInstanceOf(PresenceClientError);
      expect([error.code, error.reason, client.state]).toEqual(["INVALID_SCOPE", "protocol-version", "unsubscribed"]);
      // a round trip on the same socket: any retry would have been sent before it
      await socket.timeout(5000).emitWithAck("ping-after");
      expect(asked).toBe(1);
    } finally {
      socket.close();
      io.close();
    }
  });
});
