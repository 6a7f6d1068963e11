import { describe, expect, it } from "vitest";
import { InvalidRoomError, InvalidUserIdError, PresenceError, toPresenceError } from "./errors";
import { LocalPresence } from "./local-presence";
import { VersionCounter } from "./version";

describe("LocalPresence", () => {
  it("reports each transition once, versioned in the order it decided them", () => {
    const local = new LocalPresence({ versions: new VersionCounter(100) });
    expect(local.connect("a1", "alice", { name: "Alice" })).toEqual([{ type: "connected", userId: "alice", info: { name: "Alice" }, version: 101 }]);
    expect(local.connect("a2", "alice")).toEqual([]);
    expect(local.join("a1", "lobby")).toEqual([{ type: "joined", room: "lobby", userId: "alice", info: { name: "Alice" }, version: 102 }]);
    expect(local.join("a2", "lobby")).toEqual([]);
    expect(local.roomsOf("a2")).toEqual(["lobby"]);
    expect(local.updateInfo("alice", { name: "Al" })).toEqual([{ type: "updated", userId: "alice", info: { name: "Al" }, version: 103 }]);
    expect(local.updateInfo("bob", { name: "Bob" })).toEqual([]);
    expect(local.disconnect("a1")).toEqual({ userId: "alice", transitions: [] });
    expect(local.disconnect("a2")).toEqual({
      userId: "alice",
      transitions: [
        { type: "left", room: "lobby", userId: "alice", version: 104 },
        { type: "disconnected", userId: "alice", version: 105 },
      ],
    });
    expect(local.disconnect("a2")).toEqual({ userId: undefined, transitions: [] });
    expect(local.info("alice")).toBeUndefined();
    expect(local.usersCount).toBe(0);
    expect(local.versions.current).toBe(105);
  });

  it("starts its versions at the clock in microseconds, so a restarted decider continues above", () => {
    const before = Date.now() * 1000;
    const [connected] = new LocalPresence().connect("a1", "alice");
    expect(connected?.version).toBeGreaterThan(before);
    expect(connected?.version).toBeLessThan(Number.MAX_SAFE_INTEGER);
  });

  it("clears everything, returning every leave it causes", () => {
    const local = new LocalPresence({ versions: new VersionCounter(0) });
    local.connect("a1", "alice");
    local.connect("b1", "bob");
    local.join("b1", "lobby");
    expect(local.clear()).toEqual([
      { type: "left", room: "lobby", userId: "bob", version: 4 },
      { type: "disconnected", userId: "alice", version: 5 },
      { type: "disconnected", userId: "bob", version: 6 },
    ]);
    expect(local.connectionIds()).toEqual([]);
  });

  it("enforces its limits with typed errors and changes nothing", () => {
    const local = new LocalPresence({ maxUserIdBytes: 4, maxRoomBytes: 3 });
    expect(() => local.connect("c", "toolong")).toThrow(InvalidUserIdError);
    local.connect("c", "ok");
    expect(() => local.join("c", "room")).toThrow(InvalidRoomError);
    expect(local.users()).toEqual([{ userId: "ok", connections: 1 }]);
    expect(() => new LocalPresence({ maxUserIdBytes: 0 })).toThrow(/maxUserIdBytes/);
  });
});

describe("toPresenceError", () => {
  it("keeps typed errors and wraps everything else as a retryable UNKNOWN", () => {
    const typed = new InvalidUserIdError("empty", "empty");
    expect(toPresenceError(typed)).toBe(typed);
    expect(typed.retryable).toBe(false);
    const wrapped = toPresenceError(new Error("boom"));
    expect(wrapped).toBeInstanceOf(PresenceError);
    expect([wrapped.code, wrapped.message, wrapped.retryable]).toEqual(["UNKNOWN", "boom", true]);
    expect(toPresenceError({ odd: true }).message).toMatch(/non-error thrown/);
  });
});
