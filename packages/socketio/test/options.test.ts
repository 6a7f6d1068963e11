import { MemoryStore } from "@presence/memory";
import { afterEach, describe, expect, it } from "vitest";
import { createPresence } from "../src";
import { connectClient, eventually, startServer, type TestServer } from "./helpers";
import { Server } from "socket.io";

describe("createPresence options", () => {
  let s: TestServer | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  it("requires a store and an identify hook", () => {
    const io = new Server();
    expect(() => createPresence(io, { identify: () => "x" } as never)).toThrow(TypeError);
    expect(() => createPresence(io, { store: new MemoryStore() } as never)).toThrow(TypeError);
    void io;
  });

  it("renames or silences the client events", async () => {
    s = await startServer({ store: new MemoryStore(), events: { connected: "hello" } });
    const observer = await connectClient(s.port, { userId: "observer" });
    const hellos: string[] = [];
    observer.on("hello", (u: string) => hellos.push(u));
    const alice = await connectClient(s.port, { userId: "alice" });
    await eventually(() => expect(hellos).toEqual(["alice"]));
    alice.close();
    observer.close();
  });

  it("sends nothing to clients with events: false, but still fires server-side events", async () => {
    s = await startServer({ store: new MemoryStore(), events: false });
    const observer = await connectClient(s.port, { userId: "observer" });
    const received: unknown[] = [];
    observer.onAny((...args) => received.push(args));
    const serverSide: string[] = [];
    s.presence.on("connected", (u) => serverSide.push(u));
    const alice = await connectClient(s.port, { userId: "alice" });
    await eventually(() => expect(serverSide).toEqual(["alice"]));
    expect(received).toEqual([]);
    alice.close();
    observer.close();
  });

  it("uses a custom refusal message", async () => {
    s = await startServer({ store: new MemoryStore(), unauthorizedMessage: "who are you?" });
    await expect(connectClient(s.port, {})).rejects.toThrow("who are you?");
  });

  it("works on a custom namespace", async () => {
    const io = new Server();
    const presence = createPresence(io.of("/chat"), { store: new MemoryStore(), identify: () => "alice" });
    expect(presence.namespace.name).toBe("/chat");
    await presence.close();
    void io;
  });
});
