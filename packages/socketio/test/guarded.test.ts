import { LocalPresence, LocalStore, type Transition } from "@presence/core";
import { DIFF, PROTOCOL_VERSION, STATE, type SubscribeReply, type SyncScope } from "@presence/core/protocol";
import { MemoryStore } from "@presence/memory";
import { describe, expect, it } from "vitest";
import type { Socket as ClientSocket } from "socket.io-client";
import { eventually, sleep, useTestServers, type TestServer } from "./helpers";

/** Emits a sync request and awaits its ack, with a deadline of its own. */
async function ask(socket: ClientSocket, event: string, body: Record<string, unknown>): Promise<SubscribeReply> {
  return socket.timeout(5000).emitWithAck(event, body) as Promise<SubscribeReply>;
}

let request = 0;
const subscribe = (socket: ClientSocket, scope: SyncScope, extra: Record<string, unknown> = {}) =>
  ask(socket, "presence:subscribe", { v: PROTOCOL_VERSION, scope, request: ++request, ...extra });

/** A store whose test can announce transitions as if a decider had, in any order. */
class ScriptedStore extends LocalStore {
  constructor() {
    super(new LocalPresence());
  }

  replay(transitions: Transition[]): void {
    this.announce(transitions);
  }
}

describe("guarded presence: who sees what", () => {
  const { server, client } = useTestServers();
  let s: TestServer | undefined;

  it("lets a room be followed by its members only, by default", async () => {
    s = await server({ store: new MemoryStore(), rooms: "room:" });
    s.io.on("connection", (socket) =>
      socket.on("join", (room: string, ack: () => void) => {
        void socket.join(room);
        ack();
      }),
    );
    const member = await client(s.port, { userId: "alice" });
    const outsider = await client(s.port, { userId: "mallory" });
    await member.timeout(5000).emitWithAck("join", "room:a");
    expect(await subscribe(member, { type: "room", room: "room:a" })).toMatchObject({ ok: true });
    expect(await subscribe(outsider, { type: "room", room: "room:a" })).toMatchObject({ ok: false, error: { code: "FORBIDDEN", reason: "forbidden" } });
  });

  it("with rooms: { prefix }, speaks the room's own name and never sends to a raw Socket.IO room", async () => {
    s = await server({ store: new MemoryStore(), rooms: { prefix: "channel:" } });
    s.io.on("connection", (socket) =>
      socket.on("enter", (name: string, ack: () => void) => {
        void socket.join(`channel:${name}`);
        ack();
      }),
    );
    const alice = await client(s.port, { userId: "alice" });
    const bob = await client(s.port, { userId: "bob" });
    // mallory sits in a raw room named like the channel: it must hear nothing of it
    const mallory = await client(s.port, { userId: "mallory" });
    s.io.of("/").sockets.get(mallory.id!)!.join("general");
    const heard = (socket: ClientSocket) => {
      const events: string[] = [];
      socket.on("user has joined", (room: string, userId: string) => events.push(`+${room}:${userId}`));
      return events;
    };
    const [aliceHeard, malloryHeard] = [heard(alice), heard(mallory)];
    await alice.timeout(5000).emitWithAck("enter", "general");
    await bob.timeout(5000).emitWithAck("enter", "general");
    await eventually(() => expect(aliceHeard).toEqual(["+general:alice", "+general:bob"]));
    expect(await s.presence.roomUsersCount("general")).toBe(2);
    expect(await subscribe(alice, { type: "room", room: "general" })).toMatchObject({ ok: true });
    expect(await subscribe(mallory, { type: "room", room: "general" })).toMatchObject({ ok: false, error: { reason: "forbidden" } });
    await sleep(100);
    expect(malloryHeard).toEqual([]);
  });

  it("gives an anonymous socket nothing unless the app allows it, events included", async () => {
    s = await server({ store: new MemoryStore(), allowAnonymous: true, rooms: "room:" });
    const viewer = await client(s.port, {});
    const received: unknown[] = [];
    viewer.onAny((...args) => received.push(args));
    for (const scope of [{ type: "all" }, { type: "count" }, { type: "users", userIds: ["alice"] }, { type: "room", room: "room:a" }] as SyncScope[]) {
      expect(await subscribe(viewer, scope), scope.type).toMatchObject({ ok: false, error: { reason: "forbidden" } });
    }
    const observer = await client(s.port, { userId: "observer" });
    const seen: string[] = [];
    observer.on("user has connected", (userId: string) => seen.push(userId));
    await client(s.port, { userId: "alice" });
    await eventually(() => expect(seen).toEqual(["alice"]));
    await sleep(50);
    expect(received).toEqual([]);
  });

  it("asks the app's authorize hook for every scope and for the per-user events", async () => {
    const asked: string[] = [];
    s = await server({
      store: new MemoryStore(),
      authorize: async (socket, scope) => {
        asked.push(`${socket.handshake.auth.userId}:${scope.type}`);
        return socket.handshake.auth.userId === "admin" || scope.type === "users";
      },
    });
    const admin = await client(s.port, { userId: "admin" });
    const user = await client(s.port, { userId: "bob" });
    const events: string[] = [];
    user.on("user has connected", (userId: string) => events.push(userId));
    const adminEvents: string[] = [];
    admin.on("user has connected", (userId: string) => adminEvents.push(userId));
    expect(await subscribe(user, { type: "count" })).toMatchObject({ ok: false, error: { reason: "forbidden" } });
    expect(await subscribe(user, { type: "users", userIds: ["carol"] })).toMatchObject({ ok: true });
    expect(await subscribe(admin, { type: "all" })).toMatchObject({ ok: true });
    await client(s.port, { userId: "carol" });
    await eventually(() => expect(adminEvents).toContain("carol"));
    expect(events).toEqual([]);
    expect(asked).toEqual(expect.arrayContaining(["admin:all", "bob:all", "bob:count", "bob:users"]));
  });

  it("names no other socket in any frame", async () => {
    s = await server({ store: new MemoryStore() });
    const frames: string[] = [];
    const subscribers = await Promise.all(Array.from({ length: 5 }, (_, i) => client(s!.port, { userId: `u${i}` })));
    for (const socket of subscribers) socket.onAny((...args) => frames.push(JSON.stringify(args)));
    // subscribing in one turn: they share one read of the state, whose one page comes in each ack
    const replies = await Promise.all(subscribers.map((socket) => subscribe(socket, { type: "all" }, { request: 1 })));
    for (const reply of replies) frames.push(JSON.stringify(reply));
    await client(s.port, { userId: "late" });
    await eventually(() => expect(frames.some((frame) => frame.includes("late"))).toBe(true));
    const ids = subscribers.map((socket) => socket.id!);
    expect(replies.filter((reply) => reply.ok && reply.state?.[0] === "all")).toHaveLength(5);
    for (const frame of frames) for (const id of ids) expect(frame).not.toContain(id);
  });

  it("delivers an observer's per-user events in the decider's order: a stale one is dropped, and so is one that changes nothing", async () => {
    const store = new ScriptedStore();
    s = await server({ store });
    const observer = await client(s.port, { userId: "observer" });
    const events: unknown[][] = [];
    observer.on("user has connected", (...args: unknown[]) => args[0] === "alice" && events.push(["+", ...args]));
    observer.on("user has disconnected", (...args: unknown[]) => events.push(["-", ...args]));
    // a leave decided at 5 arrives after the rejoin decided at 10 (a slow node, a late reply): once the rejoin
    // arrives, alice is online here already, so it tells nothing; the late leave is stale
    store.replay([
      { type: "connected", userId: "alice", version: 3 },
      { type: "connected", userId: "alice", version: 10 },
      { type: "disconnected", userId: "alice", version: 5 },
      { type: "disconnected", userId: "bob", version: 4 },
    ]);
    await eventually(() => expect(events).toContainEqual(["-", "bob", 4]));
    expect(events).toEqual([
      ["+", "alice", null, 3],
      ["-", "bob", 4],
    ]);
  });
});

describe("guarded presence: what one socket can make the server hold", () => {
  const { server, client } = useTestServers();
  let s: TestServer | undefined;

  it("refuses scopes beyond the store's limits as malformed, and accepts what the store accepts", async () => {
    s = await server({ store: new MemoryStore({ maxUserIdBytes: 1024, maxRoomBytes: 16 }), rooms: () => true });
    const socket = await client(s.port, { userId: "alice" });
    expect(await subscribe(socket, { type: "users", userIds: ["x".repeat(300)] })).toMatchObject({ ok: true });
    expect(await subscribe(socket, { type: "users", userIds: ["x".repeat(1025)] })).toMatchObject({ ok: false, error: { reason: "malformed" } });
    expect(await subscribe(socket, { type: "room", room: "r".repeat(400_000) })).toMatchObject({ ok: false, error: { reason: "malformed" } });
    await s.close();
    s = await server({ store: new MemoryStore({ maxUserIdBytes: 64 }) });
    const other = await client(s.port, { userId: "bob" });
    // refused for good (malformed), never "unavailable", which a client retries forever
    expect(await subscribe(other, { type: "users", userIds: ["y".repeat(100)] })).toMatchObject({ ok: false, error: { reason: "malformed" } });
  });

  it("refuses another protocol version with a typed error", async () => {
    s = await server({ store: new MemoryStore() });
    const socket = await client(s.port, { userId: "alice" });
    expect(await subscribe(socket, { type: "all" }, { v: 1 })).toMatchObject({ ok: false, error: { reason: "protocol-version", message: expect.stringContaining(`protocol ${PROTOCOL_VERSION}`) } });
  });

  it("bounds each socket's subscriptions and request rate", async () => {
    s = await server({ store: new MemoryStore(), rooms: () => true, sync: { maxSubscriptions: 3, requestBurst: 6, requestsPerSecond: 1 } });
    s.io.on("connection", (socket) => void socket.join(["a", "b", "c", "d"]));
    const socket = await client(s.port, { userId: "alice" });
    const replies: SubscribeReply[] = [];
    for (const room of ["a", "b", "c", "d"]) replies.push(await subscribe(socket, { type: "room", room }));
    expect(replies.map((reply) => (reply.ok ? "ok" : reply.error.reason))).toEqual(["ok", "ok", "ok", "too-many-subscriptions"]);
    // the same scope again is no new subscription
    expect(await subscribe(socket, { type: "room", room: "a" })).toMatchObject({ ok: true });
    const flood = await Promise.all(Array.from({ length: 10 }, () => subscribe(socket, { type: "room", room: "a" })));
    expect(flood.filter((reply) => !reply.ok && reply.error.reason === "rate-limited").length).toBeGreaterThanOrEqual(9);
    expect(flood.find((reply) => !reply.ok)).toMatchObject({ error: { code: "RATE_LIMITED" } });
  });

  it("applies a socket's subscribes and unsubscribes in the order it sent them", async () => {
    s = await server({ store: new MemoryStore() });
    const socket = await client(s.port, { userId: "alice" });
    const [subscribed, unsubscribed] = await Promise.all([
      subscribe(socket, { type: "all" }),
      ask(socket, "presence:unsubscribe", { v: PROTOCOL_VERSION, scope: { type: "all" }, request: ++request }),
    ]);
    expect([subscribed, unsubscribed]).toMatchObject([{ ok: true }, { ok: true }]);
    const diffs: unknown[] = [];
    socket.on(DIFF, (frame) => diffs.push(frame));
    await client(s.port, { userId: "bob" });
    await sleep(400); // a tick and more: a diff would have come
    expect(diffs).toEqual([]);
  });

  it("disconnects a subscriber that stops reading once its output backs up", async () => {
    s = await server({ store: new MemoryStore(), sync: { maxBufferedBytes: 2000, tickMs: 20 } });
    const base = `http://127.0.0.1:${s.port}/socket.io/?EIO=4&transport=polling`;
    const deadline = () => AbortSignal.timeout(5000);
    // a long-polling client that subscribes, then never polls again: everything for it waits in its write buffer
    const open = await (await fetch(base, { signal: deadline() })).text();
    const sid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
    const post = (body: string) => fetch(`${base}&sid=${sid}`, { method: "POST", body, signal: deadline() });
    await post(`40${JSON.stringify({ userId: "slow" })}`);
    await eventually(() => expect(s!.io.of("/").sockets.size).toBe(1));
    await post(`420${JSON.stringify(["presence:subscribe", { v: PROTOCOL_VERSION, scope: { type: "all" }, request: 1 }])}`);
    const [slow] = [...s.io.of("/").sockets.values()];
    await eventually(() => expect(slow!.rooms.has("presence:sync:all")).toBe(true));
    for (let i = 0; i < 200 && slow!.connected; i++) {
      await s.presence.store.connect(`c${i}`, `user-${i}`);
      if (i % 10 === 9) await sleep(30);
    }
    await eventually(() => expect(slow!.connected).toBe(false), 5000);
    expect(s.io.of("/").sockets.size).toBe(0);
  });
});
