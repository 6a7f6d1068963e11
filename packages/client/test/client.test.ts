import { MemoryStore } from "@presence/memory";
import { DIFF, STATE, SUBSCRIBE, type DiffFrame, type StateFrame, type SubscribeReply } from "@presence/socketio";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { createPresenceClient, type PresenceClient } from "../src";
import { connectClient, sleep, sorted, startNode, waitFor, type TestNode } from "./harness";

const ids = (client: PresenceClient) => sorted(client.list().map((u) => u.userId));

describe("@presence/client against one server", () => {
  const nodes: TestNode[] = [];
  const sockets: ClientSocket[] = [];
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
  /** Subscribes a raw socket by hand, recording the frames it gets. */
  const rawSubscribe = async (socket: ClientSocket, scope: unknown, request = 1) => {
    const reply = (await socket.timeout(10_000).emitWithAck(SUBSCRIBE, { scope, request })) as SubscribeReply;
    return reply;
  };
  const recordFrames = (socket: ClientSocket) => {
    const frames: { diffs: DiffFrame[]; states: StateFrame[] } = { diffs: [], states: [] };
    socket.on(DIFF, (frame: DiffFrame) => frames.diffs.push(frame));
    socket.on(STATE, (frame: StateFrame) => frames.states.push(frame));
    return frames;
  };

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await Promise.allSettled(nodes.splice(0).map((n) => n.close()));
  });

  it("applies the state, then the diffs, with join, leave, update and sync events", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    await user(n.port, "alice", { name: "Alice" });
    const bob = await user(n.port, "bob");
    const observer = await user(n.port, "observer");
    const online = createPresenceClient(observer);
    const events: string[] = [];
    let syncs = 0;
    online.on("join", ({ userId }) => events.push(`+${userId}`));
    online.on("leave", (userId) => events.push(`-${userId}`));
    online.on("update", ({ userId, info }) => events.push(`~${userId}:${JSON.stringify(info)}`));
    online.on("sync", () => syncs++);
    await waitFor("the first state", () => expect(ids(online)).toEqual(["alice", "bob", "observer"]));
    expect(online.get("alice")).toEqual({ userId: "alice", info: { name: "Alice" } });
    expect(online.synced).toBe(true);

    await user(n.port, "carol", { name: "Carol" });
    await waitFor("carol's join", () => expect(ids(online)).toEqual(["alice", "bob", "carol", "observer"]));
    expect(online.get("carol")?.info).toEqual({ name: "Carol" });
    bob.close();
    await waitFor("bob's leave", () => expect(ids(online)).toEqual(["alice", "carol", "observer"]));
    await n.presence.updateInfo("alice", { name: "Alice", status: "away" });
    await waitFor("alice's update", () => expect(online.get("alice")?.info).toEqual({ name: "Alice", status: "away" }));
    expect(online.count).toBe(3);
    expect(events).toEqual(
      expect.arrayContaining(["+alice", "+bob", "+observer", "+carol", "-bob", '~alice:{"name":"Alice","status":"away"}']),
    );
    expect(syncs).toBeGreaterThanOrEqual(4);
    online.close();
  });

  it("coalesces a tick per user, and still sends every per-user event once, in order", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 60_000 } }); // flushed by hand
    const observer = await user(n.port, "observer");
    expect(await rawSubscribe(observer, { type: "all" })).toEqual({ ok: true });
    const frames = recordFrames(observer);
    const events: string[] = [];
    observer.on("user has connected", (userId: string) => events.push(`+${userId}`));
    observer.on("user has disconnected", (userId: string) => events.push(`-${userId}`));
    await n.presence.sync!.flush(); // the observer's own join

    const decided: string[] = [];
    n.presence.on("connected", (userId) => decided.push(`+${userId}`));
    n.presence.on("disconnected", (userId) => decided.push(`-${userId}`));
    const ghost = await user(n.port, "ghost");
    await user(n.port, "stays");
    ghost.close();
    await waitFor("ghost's leave decided", () => expect(decided).toEqual(["+ghost", "+stays", "-ghost"]));
    const before = frames.diffs.length;
    await n.presence.sync!.flush();
    await waitFor("the flushed events", () => expect(events.filter((e) => e !== "+observer")).toEqual(["+ghost", "+stays", "-ghost"]));
    await waitFor("the flushed diff", () => expect(frames.diffs.length).toBe(before + 1));
    const diff = frames.diffs.at(-1)!;
    // ghost joined and left inside one tick: not in the diff at all
    expect(diff.joins?.map(([userId]) => userId)).toEqual(["stays"]);
    expect(diff.leaves).toBeUndefined();
  });

  it("follows a list of users, replaced whole on each subscribe, and refuses a list over the cap", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 60_000, maxUserIds: 3 } });
    const a = await user(n.port, "a");
    await user(n.port, "b");
    const observer = await user(n.port, "observer");
    const follows = createPresenceClient(observer, { userIds: ["a", "c"] });
    await waitFor("the list's state", () => expect(ids(follows)).toEqual(["a"]));
    await user(n.port, "c");
    await user(n.port, "d");
    await n.presence.sync!.flush();
    await waitFor("c's join", () => expect(ids(follows)).toEqual(["a", "c"]));

    const raw = await user(n.port, "raw");
    const frames = recordFrames(raw);
    expect(await rawSubscribe(raw, { type: "users", userIds: ["a", "b"] }, 1)).toEqual({ ok: true });
    expect(await rawSubscribe(raw, { type: "users", userIds: ["b"] }, 2)).toEqual({ ok: true });
    expect(frames.states.map((s) => [s.requests[raw.id!], s.users?.map(([userId]) => userId)])).toEqual([
      [1, ["a", "b"]],
      [2, ["b"]],
    ]);
    a.close(); // raw no longer follows a: its leave must not reach raw
    await waitFor("a's leave", () => expect(n.presence.isUserConnected("a")).resolves.toBe(false));
    await n.presence.sync!.flush();
    await waitFor("a's leave in the list", () => expect(ids(follows)).toEqual(["c"]));
    expect(frames.diffs).toEqual([]);

    const tooMany = await rawSubscribe(raw, { type: "users", userIds: ["a", "b", "c", "d"] }, 3);
    expect(tooMany).toMatchObject({ ok: false, error: { code: "INVALID_SCOPE", reason: "too-many-user-ids" } });
    expect(await rawSubscribe(raw, { type: "users", userIds: [""] }, 4)).toMatchObject({ ok: false, error: { reason: "malformed" } });
    expect(await rawSubscribe(raw, { type: "everything" }, 5)).toMatchObject({ ok: false, error: { reason: "malformed" } });
  });

  it("keeps the count alone with countOnly", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    await user(n.port, "a");
    const observer = await user(n.port, "observer");
    const count = createPresenceClient(observer, { countOnly: true });
    await waitFor("the count's state", () => expect(count.count).toBe(2));
    const b = await user(n.port, "b");
    await waitFor("the count after b", () => expect(count.count).toBe(3));
    b.close();
    await waitFor("the count after b left", () => expect(count.count).toBe(2));
    expect(count.list()).toEqual([]);
  });

  it("follows a room, asks the app about non-members, and refuses untracked rooms", async () => {
    const n = await node({
      store: new MemoryStore(),
      sync: { tickMs: 50, canSubscribeRoom: (socket, room) => room !== "room-secret" },
    });
    n.io.on("connection", (socket) => {
      socket.on("join", (room: string, ack: () => void) => void Promise.resolve(socket.join(room)).then(ack));
      socket.on("leave", (room: string, ack: () => void) => void Promise.resolve(socket.leave(room)).then(ack));
    });
    const alice = await user(n.port, "alice", { name: "Alice" });
    await alice.timeout(5000).emitWithAck("join", "room-1");
    const observer = await user(n.port, "observer");
    const room = createPresenceClient(observer, { room: "room-1" });
    await waitFor("the room's state", () => expect(room.list()).toEqual([{ userId: "alice", info: { name: "Alice" } }]));
    const bob = await user(n.port, "bob");
    await bob.timeout(5000).emitWithAck("join", "room-1");
    await waitFor("bob in the room", () => expect(ids(room)).toEqual(["alice", "bob"]));
    await n.presence.updateInfo("alice", { name: "Alicia" });
    await waitFor("alice's update in the room", () => expect(room.get("alice")?.info).toEqual({ name: "Alicia" }));
    await alice.timeout(5000).emitWithAck("leave", "room-1");
    bob.close();
    await waitFor("the room emptied", () => expect(ids(room)).toEqual([]));

    const errors: string[] = [];
    createPresenceClient(observer, { room: "room-secret" }).on("error", (error) => errors.push(`${error.code}:${error.reason}`));
    createPresenceClient(observer, { room: "lobby" }).on("error", (error) => errors.push(`${error.code}:${error.reason}`));
    await waitFor("both refusals", () => expect(sorted(errors)).toEqual(["INVALID_SCOPE:room-forbidden", "INVALID_SCOPE:rooms-disabled"]));
    // a member may always follow its room
    await observer.timeout(5000).emitWithAck("join", "room-secret");
    expect(await rawSubscribe(observer, { type: "room", room: "room-secret" }, 9)).toEqual({ ok: true });
  });

  it("sends nothing to a socket that subscribed to nothing", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 20 }, events: false });
    const idle = await user(n.port, "idle");
    const heard: string[] = [];
    idle.onAny((event: string) => heard.push(event));
    for (const userId of ["a", "b", "c"]) (await user(n.port, userId)).close();
    await sleep(300);
    expect(heard).toEqual([]);
  });

  it("resubscribes and reads the state again after a reconnect", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    const bob = await user(n.port, "bob");
    const observer = await user(n.port, "observer", undefined, { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    const online = createPresenceClient(observer);
    await waitFor("the first state", () => expect(ids(online)).toEqual(["bob", "observer"]));
    // cut the transport: changes made meanwhile are only in the next state
    let resynced = 0;
    observer.io.once("reconnect", () => resynced++);
    observer.io.engine.close();
    bob.close();
    await user(n.port, "carol");
    await waitFor("the reconnect", () => expect(resynced).toBe(1));
    await waitFor("the state after the reconnect", () => expect(ids(online)).toEqual(["carol", "observer"]));
    // and on the server's request
    n.presence.sync!.resync();
    await waitFor("still right after a requested resync", () => expect(ids(online)).toEqual(["carol", "observer"]));
  });

  it("shares one store read between the subscribers that arrive while a read is under way", async () => {
    const store = new MemoryStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reads = 0;
    const slowStore = new Proxy(store, {
      get(target, property) {
        if (property === "users") {
          return (options?: { pageSize?: number }) => {
            reads++;
            return (async function* () {
              await gate;
              yield* target.users(options);
            })();
          };
        }
        const value: unknown = Reflect.get(target, property);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const n = await node({ store: slowStore, sync: { tickMs: 30 } });
    let arrived = 0;
    n.io.on("connection", (socket) => socket.on(SUBSCRIBE, () => arrived++));
    const sockets = await Promise.all(Array.from({ length: 20 }, (_, i) => user(n.port, `viewer-${i}`)));
    const first = createPresenceClient(sockets[0]!);
    await waitFor("the first read", () => expect(reads).toBe(1));
    const others = sockets.slice(1).map((socket) => createPresenceClient(socket));
    await waitFor("every subscribe to arrive", () => expect(arrived).toBe(20));
    release();
    const everyone = sorted(sockets.map((_, i) => `viewer-${i}`));
    await waitFor("every view", () => [first, ...others].forEach((view) => expect(ids(view)).toEqual(everyone)));
    expect(reads).toBe(2); // the first, and one for the 19 that came while it was under way
  });

  it("resyncs once at the end of the tick however often the server asks", async () => {
    const n = await node({ store: new MemoryStore(), sync: { tickMs: 50 } });
    let subscribes = 0;
    n.io.on("connection", (socket) => socket.on(SUBSCRIBE, () => subscribes++));
    const observer = await user(n.port, "observer");
    const online = createPresenceClient(observer);
    await waitFor("the first state", () => expect(ids(online)).toEqual(["observer"]));
    for (let i = 0; i < 5; i++) n.presence.sync!.resyncSoon();
    await waitFor("one resubscribe", () => expect(subscribes).toBe(2));
    await sleep(200);
    expect(subscribes).toBe(2);
    expect(online.synced).toBe(true);
  });

  it("buffers diffs that arrive before the state", async () => {
    const store = new MemoryStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let snapshots = 0;
    // the state is read at once, but delivered only when the gate opens: later joins reach the client first, as diffs
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
    const observer = await user(n.port, "observer");
    const frames = recordFrames(observer);
    const online = createPresenceClient(observer);
    await waitFor("the state read", () => expect(snapshots).toBe(1));
    await user(n.port, "late");
    await waitFor("late's diff before the state", () => expect(frames.diffs.length).toBeGreaterThan(0));
    expect(frames.states).toEqual([]);
    expect(online.synced).toBe(false);
    release();
    await waitFor("the state and the buffered diff", () => expect(ids(online)).toEqual(["late", "observer"]));
    // the state itself did not have late: the buffered diff put it there
    expect(frames.states.flatMap((s) => s.users ?? []).map(([userId]) => userId)).toEqual(["observer"]);
  });
});
