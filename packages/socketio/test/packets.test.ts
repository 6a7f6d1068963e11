import { LocalPresence, LocalStore, type Transition } from "@presence/core";
import { DIFF, PROTOCOL_VERSION, STATE, unpackDiff, unpackState, type PackedDiff, type StateFrame, type SubscribeReply, type SyncScope } from "@presence/core/protocol";
import { MemoryStore } from "@presence/memory";
import type { Socket as ClientSocket } from "socket.io-client";
import { describe, expect, it } from "vitest";
import { BUSY_TICK_CHANGES, nextTickMs } from "../src/sync";
import { eventually, useTestServers, type TestServer } from "./helpers";

// What each subscriber is sent, packet by packet: every packet is a WebSocket frame and a system call on both sides.

let request = 0;
const subscribe = (socket: ClientSocket, scope: SyncScope) =>
  socket.timeout(5000).emitWithAck("presence:subscribe", { v: PROTOCOL_VERSION, scope, request: ++request }) as Promise<SubscribeReply>;

/** The state frames a socket is sent as events (not in acks). */
const stateFrames = (socket: ClientSocket) => {
  const frames: StateFrame[] = [];
  socket.on(STATE, (packed: unknown) => frames.push(unpackState(packed)!));
  return frames;
};

const stateOf = (reply: SubscribeReply) => (reply.ok && reply.state ? unpackState(reply.state) : undefined);

/** A store whose test announces transitions as a decider would, or as one that does not version. */
class ScriptedStore extends LocalStore {
  constructor() {
    super(new LocalPresence());
  }

  replay(transitions: Transition[]): void {
    this.announce(transitions);
  }
}

describe("packets per subscriber", () => {
  const { server, client } = useTestServers();
  let s: TestServer | undefined;

  it("sends a small versioned state in the subscribe's ack, one packet instead of two", async () => {
    s = await server({ store: new MemoryStore() });
    const observer = await client(s.port, { userId: "observer" });
    await client(s.port, { userId: "friend" });
    const events = stateFrames(observer);
    const count = stateOf(await subscribe(observer, { type: "count" }));
    expect(count).toMatchObject({ key: "count", request, count: 2, done: true, version: expect.any(Number) });
    const friends = stateOf(await subscribe(observer, { type: "users", userIds: ["friend", "stranger"] }));
    expect(friends).toMatchObject({ key: "users", request, users: [["friend"]], done: true });
    const all = stateOf(await subscribe(observer, { type: "all" }));
    expect(all?.users?.map(([userId]) => userId).sort()).toEqual(["friend", "observer"]);
    expect(events).toEqual([]);
  });

  it("sends a long state as state frames, leaving a short last page for the ack", async () => {
    const store = new MemoryStore();
    for (let i = 0; i < 230; i++) await store.connect(`c-${i}`, `u-${String(i).padStart(3, "0")}`);
    s = await server({ store, sync: { pageSize: 120 } });
    const observer = await client(s.port, { userId: "observer" });
    const events = stateFrames(observer);
    // 231 users: a page of 120, then a last page of 111, too long for the ack
    const long = await subscribe(observer, { type: "all" });
    expect(stateOf(long)).toBeUndefined();
    await eventually(() => expect(events.map((frame) => [frame.users?.length, frame.done])).toEqual([[120, false], [111, true]]));
    // 220 users: a page of 120 as a frame, then the last 100 in the ack
    for (let i = 0; i < 11; i++) await store.disconnect(`c-${i}`);
    events.length = 0;
    const split = await subscribe(observer, { type: "all" });
    expect(events.map((frame) => [frame.users?.length, frame.done, frame.request])).toEqual([[120, false, request]]);
    expect(stateOf(split)).toMatchObject({ request, done: true });
    const users = [...events[0]!.users!, ...stateOf(split)!.users!].map(([userId]) => userId);
    expect(new Set(users).size).toBe(220);
  });

  it("sends an unversioned state as a state frame: it replaces the view whole, so it must come before the later diffs", async () => {
    const store = new ScriptedStore();
    s = await server({ store });
    const observer = await client(s.port, { userId: "observer" });
    // a store that does not version: once such a transition is delivered, nothing orders the states
    store.replay([{ type: "connected", userId: "old-style" }]);
    const events = stateFrames(observer);
    await eventually(async () => {
      events.length = 0;
      const reply = await subscribe(observer, { type: "count" });
      expect(stateOf(reply)).toBeUndefined();
      expect(events).toMatchObject([{ key: "count", version: null, done: true }]);
    });
  });

  it("answers a batch of subscribes with one reply each, in order, and refuses a batch over the rate, empty or of another version whole", async () => {
    s = await server({ store: new MemoryStore(), sync: { maxSubscriptions: 2, requestBurst: 8, requestsPerSecond: 1 } });
    const observer = await client(s.port, { userId: "observer" });
    const batch = (entries: unknown[]) => observer.timeout(5000).emitWithAck("presence:subscribe", { v: PROTOCOL_VERSION, batch: entries }) as Promise<SubscribeReply[] | SubscribeReply>;
    const reasons = (replies: SubscribeReply[] | SubscribeReply) => (Array.isArray(replies) ? replies.map((reply) => (reply.ok ? stateOf(reply)?.key : reply.error.reason)) : replies);
    const replies = await batch([
      { scope: { type: "count" }, request: ++request },
      { scope: { type: "room" }, request: ++request }, // no room: this one alone is refused
      { scope: { type: "users", userIds: ["observer"] }, request: ++request },
      { scope: { type: "all" }, request: ++request }, // a third subscription of two allowed
    ]);
    expect(reasons(replies)).toEqual(["count", "malformed", "users", "too-many-subscriptions"]);
    expect(await batch([])).toMatchObject({ ok: false, error: { reason: "malformed" } });
    // 4 + 1 of a burst of 8: three left (and one a second), so a batch of 5 is refused whole
    const costly = Array.from({ length: 5 }, () => ({ scope: { type: "count" }, request: ++request }));
    expect(await batch(costly)).toMatchObject({ ok: false, error: { reason: "rate-limited" } });
    // a batch of another protocol version is refused whole too
    const old = (await observer.timeout(5000).emitWithAck("presence:subscribe", { v: 5, batch: [{ scope: { type: "count" }, request: ++request }] })) as SubscribeReply;
    expect(old).toMatchObject({ ok: false, error: { reason: "protocol-version" } });
  });

  it("stretches the tick after a busy one, in proportion, up to maxTickMs, and back after a quiet one", async () => {
    expect(nextTickMs(0, { tickMs: 250, maxTickMs: 1000 })).toBe(250);
    expect(nextTickMs(BUSY_TICK_CHANGES, { tickMs: 250, maxTickMs: 1000 })).toBe(250);
    expect(nextTickMs(2 * BUSY_TICK_CHANGES, { tickMs: 250, maxTickMs: 1000 })).toBe(500);
    expect(nextTickMs(100 * BUSY_TICK_CHANGES, { tickMs: 250, maxTickMs: 1000 })).toBe(1000);
    // a maxTickMs under tickMs never shortens the tick
    expect(nextTickMs(100 * BUSY_TICK_CHANGES, { tickMs: 250, maxTickMs: 100 })).toBe(250);

    // ticks flushed by hand: what one holds does not depend on timing
    const store = new MemoryStore();
    s = await server({ store, sync: { tickMs: 600_000, maxTickMs: 2_400_000 } });
    const observer = await client(s.port, { userId: "observer" });
    const packets: PackedDiff[][] = [];
    observer.on(DIFF, (tick: PackedDiff[]) => packets.push(tick));
    expect(await subscribe(observer, { type: "count" })).toMatchObject({ ok: true });
    expect(s.presence.sync!.tickMs).toBe(600_000);
    for (let i = 0; i < 200; i++) await store.connect(`c-${i}`, `u-${i}`);
    await eventually(async () => expect(await s!.presence.usersCount()).toBe(201));
    await s.presence.sync!.flush();
    // 201 changes (the observer's own connect too): 600 s × 201 / 64
    expect(s.presence.sync!.tickMs).toBe(Math.round((600_000 * 201) / BUSY_TICK_CHANGES));
    // the 200 joins reach the count subscriber as one packet, with the count as of the tick
    await eventually(() => expect(packets.map((tick) => tick.map((packed) => unpackDiff(packed)?.count))).toEqual([[201]]));
    await store.connect("c-late", "late");
    await s.presence.sync!.flush();
    expect(s.presence.sync!.tickMs).toBe(600_000);
    await eventually(() => expect(packets.at(-1)?.map((packed) => unpackDiff(packed)?.count)).toEqual([202]));
  });
});
