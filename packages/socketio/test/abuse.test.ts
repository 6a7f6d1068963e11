import { PROTOCOL_VERSION } from "@presence/core/protocol";
import { MemoryStore } from "@presence/memory";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import type { Socket as ClientSocket } from "socket.io-client";
import { eventually, useTestServers, type TestServer } from "./helpers";

/**
 * Floods from one socket against a real server, bounded in count and time:
 * what each costs the server in heap and in event-loop delay. The bounds are
 * generous (this machine is shared); the README gives the measured figures.
 */
const HEAP_BOUND_BYTES = 40 * 1024 * 1024;
const LAG_BOUND_MS = 1000;

async function measured(flood: () => Promise<void>): Promise<{ heapBytes: number; lagMs: number }> {
  const before = process.memoryUsage().heapUsed;
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  await flood();
  lag.disable();
  const heapBytes = process.memoryUsage().heapUsed - before;
  const lagMs = lag.max / 1e6;
  console.log(`  heap +${(heapBytes / 1e6).toFixed(1)} MB, worst event-loop delay ${lagMs.toFixed(0)} ms`);
  return { heapBytes, lagMs };
}

describe("abuse: one socket against the server", { timeout: 60_000 }, () => {
  const { server, client } = useTestServers();
  let s: TestServer | undefined;

  it("20,000 room joins: presence follows at most maxRoomsPerConnection of them", async () => {
    const store = new MemoryStore();
    s = await server({ store, rooms: "room:" });
    const errors: string[] = [];
    s.presence.on("error", (error) => errors.push((error as { code?: string }).code ?? "?"));
    s.io.on("connection", (socket) =>
      socket.on("join-many", (n: number, ack: () => void) => {
        void socket.join(Array.from({ length: n }, (_, i) => `room:${i}`));
        ack();
      }),
    );
    const socket = await client(s.port, { userId: "mallory" });
    const cost = await measured(async () => {
      await socket.timeout(30_000).emitWithAck("join-many", 20_000);
      await eventually(async () => expect(await store.isUserInRoom("mallory", "room:63")).toBe(true), 10_000);
    });
    expect(await store.isUserInRoom("mallory", "room:64")).toBe(false);
    expect(errors.length).toBe(20_000 - 64);
    expect(new Set(errors)).toEqual(new Set(["LIMIT_EXCEEDED"]));
    expect(cost.heapBytes).toBeLessThan(HEAP_BOUND_BYTES);
    expect(cost.lagMs).toBeLessThan(LAG_BOUND_MS);
  });

  it("10,000 subscribes: refused past the rate, the server holds no more for them", async () => {
    s = await server({ store: new MemoryStore(), rooms: () => true });
    for (let i = 0; i < 200; i++) await s.presence.store.connect(`c${i}`, `user-${i}`);
    const socket = await client(s.port, { userId: "mallory" });
    let refused = 0;
    const cost = await measured(async () => {
      const replies = await Promise.all(
        Array.from({ length: 10_000 }, (_, i) =>
          socket.timeout(30_000).emitWithAck("presence:subscribe", { v: PROTOCOL_VERSION, scope: i % 2 ? { type: "all" } : { type: "room", room: `r${i}` }, request: i }),
        ),
      );
      refused = replies.filter((reply: { ok: boolean }) => !reply.ok).length;
    });
    expect(refused).toBeGreaterThanOrEqual(10_000 - 40);
    expect(cost.heapBytes).toBeLessThan(HEAP_BOUND_BYTES);
    expect(cost.lagMs).toBeLessThan(LAG_BOUND_MS);
  });

  it("10,000 subscribes from a socket that never reads: it is dropped, the server holds little", async () => {
    s = await server({ store: new MemoryStore(), sync: { maxBufferedBytes: 1024 * 1024 } });
    for (let i = 0; i < 500; i++) await s.presence.store.connect(`c${i}`, `user-${i}`);
    const base = `http://127.0.0.1:${s.port}/socket.io/?EIO=4&transport=polling`;
    const deadline = () => AbortSignal.timeout(10_000);
    const sid = (JSON.parse((await (await fetch(base, { signal: deadline() })).text()).slice(1)) as { sid: string }).sid;
    const post = (body: string) => fetch(`${base}&sid=${sid}`, { method: "POST", body, signal: deadline() });
    await post(`40${JSON.stringify({ userId: "mallory" })}`);
    await eventually(() => expect(s!.io.of("/").sockets.size).toBe(1));
    const cost = await measured(async () => {
      // 100 posts of 100 subscribes each (an Engine.IO payload joins packets with \x1e)
      for (let batch = 0; batch < 100; batch++) {
        const packets = Array.from({ length: 100 }, (_, i) => `42${batch * 100 + i}${JSON.stringify(["presence:subscribe", { v: PROTOCOL_VERSION, scope: { type: "all" }, request: i }])}`);
        const response = await post(packets.join("\x1e")).catch(() => undefined);
        if (!response?.ok) break; // the server closed the session
      }
      await eventually(() => expect(s!.io.of("/").sockets.size).toBe(0), 10_000);
    });
    expect(cost.heapBytes).toBeLessThan(HEAP_BOUND_BYTES);
    expect(cost.lagMs).toBeLessThan(LAG_BOUND_MS);
  });

  it("per-user events to a socket that never reads: it is dropped once its output backs up, the server holds little", async () => {
    s = await server({ store: new MemoryStore(), sync: { maxBufferedBytes: 64 * 1024 } });
    const base = `http://127.0.0.1:${s.port}/socket.io/?EIO=4&transport=polling`;
    const deadline = () => AbortSignal.timeout(10_000);
    const sid = (JSON.parse((await (await fetch(base, { signal: deadline() })).text()).slice(1)) as { sid: string }).sid;
    await fetch(`${base}&sid=${sid}`, { method: "POST", body: `40${JSON.stringify({ userId: "mallory" })}`, signal: deadline() });
    await eventually(() => expect(s!.io.of("/").sockets.size).toBe(1));
    // it never polls again: every "user has connected" and "user has disconnected" waits for it
    const cost = await measured(async () => {
      for (let round = 0; round < 20 && s!.io.of("/").sockets.size > 0; round++) {
        for (let i = 0; i < 1000; i++) await s!.presence.store.connect(`c${round}-${i}`, `user-${round}-${i}`);
        for (let i = 0; i < 1000; i++) await s!.presence.store.disconnect(`c${round}-${i}`);
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      await eventually(() => expect(s!.io.of("/").sockets.size, "the socket that never reads").toBe(0), 5000);
    });
    expect(cost.heapBytes).toBeLessThan(HEAP_BOUND_BYTES);
  });

  it("3,000 info updates from one socket: rate limited (or the socket dropped), so observers get a bounded number of frames", async () => {
    s = await server({ store: new MemoryStore(), clientUpdates: () => true, sync: { tickMs: 50 } });
    const observer = await client(s.port, { userId: "observer" });
    let updates = 0;
    observer.on("user has updated", () => updates++);
    const socket = await client(s.port, { userId: "mallory" });
    let accepted = 0;
    let answered = 0;
    const started = Date.now();
    const cost = await measured(async () => {
      const done = new Promise<void>((resolve) => {
        socket.on("disconnect", () => resolve());
        for (let i = 0; i < 3000; i++) {
          socket.emit("presence:update", { v: PROTOCOL_VERSION, info: { status: `s${i}` } }, (reply: { ok: boolean }) => {
            if (reply.ok) accepted++;
            if (++answered === 3000) resolve();
          });
        }
      });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`3,000 updates: ${answered} answered and the socket still connected after 20 s`)), 20_000);
      });
      await Promise.race([done, deadline]).finally(() => clearTimeout(timer));
    });
    // its refusals back up its own output: it reads them, or it is dropped as a slow reader
    expect(answered === 3000 || socket.disconnected).toBe(true);
    // the burst, and what the allowance refilled meanwhile (2 a second)
    expect(accepted).toBeLessThanOrEqual(20 + Math.ceil((2 * (Date.now() - started)) / 1000));
    await eventually(() => expect(updates).toBe(accepted));
    expect(cost.heapBytes).toBeLessThan(HEAP_BOUND_BYTES);
    expect(cost.lagMs).toBeLessThan(LAG_BOUND_MS);
    // an honest socket is still served
    const honest = await client(s.port, { userId: "honest" });
    expect(await honest.timeout(5000).emitWithAck("presence:update", { v: PROTOCOL_VERSION, info: { status: "here" } })).toEqual({ ok: true });
  });

});
