import { InvalidOptionError, RoomsDisabledError } from "@presence/core";
import { MemoryStore } from "@presence/memory";
import { afterEach, describe, expect, it } from "vitest";
import { createPresence, defaultAuthorize } from "../src";
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
    expect(() => createPresence(io, { identify: () => "x" } as never)).toThrow(InvalidOptionError);
    expect(() => createPresence(io, { store: new MemoryStore() } as never)).toThrow(/`identify` must be a function/);
    expect(() => createPresence(io, { store: {}, identify: () => "x" } as never)).toThrow(/`store` must be a PresenceStore .*missing connect\(\)/);
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

  it("lets anonymous viewers connect uncounted when allowed, and refuses them by default", async () => {
    s = await startServer({ store: new MemoryStore() });
    await expect(connectClient(s.port, {})).rejects.toThrow("unauthorized");
    await s.close();
    s = await startServer({
      store: new MemoryStore(),
      allowAnonymous: true,
      // anonymous sockets see nothing by default: this app lets them see who is online
      authorize: (socket, scope) => scope.type === "all" || defaultAuthorize(socket, scope),
    });
    const viewer = await connectClient(s.port, {});
    const joins: string[] = [];
    viewer.on("user has connected", (u: string) => joins.push(u));
    const alice = await connectClient(s.port, { userId: "alice" });
    await eventually(() => expect(joins).toEqual(["alice"]));
    expect(await s.presence.usersList()).toEqual(["alice"]);
    expect(s.presence.userIdOf(s.io.of("/").sockets.get(viewer.id!)!)).toBeUndefined();
    // a forged id is still refused: anonymous means "no user", never "any user"
    await expect(connectClient(s.port, { userId: "" })).rejects.toThrow("unauthorized");
    viewer.close();
    alice.close();
  });

  it("refuses misspelled and ill-typed options, as plain JavaScript, naming the closest option", () => {
    const io = new Server();
    const store = new MemoryStore();
    const identify = () => "x";
    const attempt = (options: Record<string, unknown>) => () => createPresence(io, { store, identify, ...options } as never);
    expect(attempt({ leaveDelay: 100 })).toThrow(/`leaveDelay` is not an option: did you mean `leaveDelayMs`\?/);
    expect(attempt({ leaveDelayMs: -5 })).toThrow(InvalidOptionError);
    expect(attempt({ sync: { tickMS: 10 } })).toThrow(/did you mean `tickMs`/);
    expect(attempt({ sync: { maxSubscriptions: 0 } })).toThrow(/sync.maxSubscriptions/);
    expect(attempt({ events: { conected: "x" } })).toThrow(/did you mean `connected`/);
    expect(attempt({ authorize: "yes" })).toThrow(/`authorize` must be a function/);
  });

  it("takes its limits from the store, so it never accepts a user the store would refuse", async () => {
    s = await startServer({ store: new MemoryStore({ maxUserIdBytes: 5 }) });
    await expect(connectClient(s.port, { userId: "sixsix" })).rejects.toMatchObject({ data: { reason: "invalid-user-id" } });
    await s.close();
    s = await startServer({ store: new MemoryStore({ maxUserIdBytes: 400 }) });
    const long = "x".repeat(300);
    const tab = await connectClient(s.port, { userId: long });
    await eventually(async () => expect(await s!.presence.isUserConnected(long)).toBe(true));
    tab.close();
  });

  it("rejects room queries with a typed error when no rooms are tracked", async () => {
    s = await startServer({ store: new MemoryStore() });
    await expect(s.presence.roomUsersCount("lobby")).rejects.toBeInstanceOf(RoomsDisabledError);
    await expect(s.presence.isUserInRoom("alice", "lobby")).rejects.toMatchObject({ code: "ROOMS_DISABLED" });
    expect(() => s!.presence.roomUsers("lobby")).toThrow(RoomsDisabledError);
  });

  it("warns once per kind through process warnings when nobody listens to errors", async () => {
    const warnings: Array<{ name: string; code?: string; message: string }> = [];
    const onWarning = (warning: Error & { code?: string }) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      s = await startServer({
        store: new MemoryStore(),
        identify: (socket) => {
          if (socket.handshake.auth.userId === "boom") throw new Error("token service down");
          return socket.handshake.auth.userId;
        },
      });
      await expect(connectClient(s.port, { userId: "boom" })).rejects.toThrow("unauthorized");
      await expect(connectClient(s.port, { userId: "boom" })).rejects.toThrow("unauthorized");
      await eventually(() => expect(warnings.map((w) => w.code)).toEqual(["PRESENCE_IDENTIFY_FAILED"]));
      expect(warnings[0]!.name).toBe("PresenceWarning");
      expect(warnings[0]!.message).toContain("token service down");
    } finally {
      process.off("warning", onWarning);
    }
  });
});
