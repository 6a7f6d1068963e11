import { describe, expect, it } from "vitest";
import { ConnectionCounter } from "./counter";
import { ConnectionConflictError } from "./errors";

describe("ConnectionCounter", () => {
  it("reports transitions only at the edges", () => {
    const counter = new ConnectionCounter();
    expect(counter.connect("a1", "alice")).toBe(true);
    expect(counter.connect("a2", "alice")).toBe(false);
    expect(counter.connectionsOf("alice")).toBe(2);
    expect(counter.disconnect("a1")).toBeUndefined();
    expect(counter.disconnect("a2")).toBe("alice");
    expect(counter.usersCount).toBe(0);
    expect(counter.connectionsCount).toBe(0);
  });

  it("is idempotent and never goes negative", () => {
    const counter = new ConnectionCounter();
    counter.connect("a1", "alice");
    expect(counter.connect("a1", "alice")).toBe(false);
    expect(counter.connectionsOf("alice")).toBe(1);
    expect(counter.disconnect("a1")).toBe("alice");
    expect(counter.disconnect("a1")).toBeUndefined();
    expect(counter.connectionsOf("alice")).toBe(0);
    expect(counter.isOnline("alice")).toBe(false);
  });

  it("refuses a connection moving to another user", () => {
    const counter = new ConnectionCounter();
    counter.connect("c1", "alice");
    expect(() => counter.connect("c1", "bob")).toThrow(ConnectionConflictError);
    expect(counter.userOf("c1")).toBe("alice");
    expect(counter.isOnline("bob")).toBe(false);
  });
});
