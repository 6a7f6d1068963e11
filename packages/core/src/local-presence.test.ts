import { describe, expect, it } from "vitest";
import { InvalidRoomError, InvalidUserIdError, PresenceError, toPresenceError } from "./errors";
import { LocalPresence } from "./local-presence";

describe("LocalPresence", () => {
  it("reports the user, the offline transition and the rooms a disconnect leaves", () => {
    const local = new LocalPresence();
    expect(local.connect("a1", "alice", { name: "Alice" })).toBe(true);
    expect(local.connect("a2", "alice")).toBe(false);
    expect(local.join("a1", "lobby")).toBe(true);
    expect(local.join("a2", "lobby")).toBe(false);
    expect(local.disconnect("a1")).toEqual({ userId: "alice", offline: false, left: [] });
    expect(local.disconnect("a2")).toEqual({ userId: "alice", offline: true, left: [{ type: "left", room: "lobby", userId: "alice" }] });
    expect(local.disconnect("a2")).toEqual({ userId: undefined, offline: false, left: [] });
    expect(local.info("alice")).toBeUndefined();
    expect(local.usersCount).toBe(0);
  });

  it("clears everything, returning every leave it causes", () => {
    const local = new LocalPresence();
    local.connect("a1", "alice");
    local.connect("b1", "bob");
    local.join("b1", "lobby");
    expect(local.clear()).toEqual([
      { type: "left", room: "lobby", userId: "bob" },
      { type: "disconnected", userId: "alice" },
      { type: "disconnected", userId: "bob" },
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
