import { describe, expect, it } from "vitest";
import { knownField } from "./encoding";
import { Ledger } from "./ledger";

const transition = { type: "transition", version: 1 } as const;
const unchanged = { type: "unchanged" } as const;

describe("Ledger", () => {
  it("keeps what Redis confirmed under the current process id, once per user and room member", () => {
    const ledger = new Ledger();
    ledger.reset("p1");
    ledger.note("p1", { kind: "connect", connectionId: "a1", slot: 0, userId: "alice", info: "" }, transition);
    ledger.note("p1", { kind: "connect", connectionId: "a2", slot: 0, userId: "alice", info: "" }, unchanged);
    ledger.note("p1", { kind: "join", connectionId: "a1", slot: 0, userId: "alice", room: "lobby" }, transition);
    ledger.note("p1", { kind: "join", connectionId: "a2", slot: 0, userId: "alice", room: "lobby" }, unchanged);
    ledger.note("p1", { kind: "republish", connectionId: "b1", slot: 0, userId: "bob", info: "" }, unchanged);
    expect(ledger.account().sort()).toEqual([knownField({ userId: "alice" }), knownField({ userId: "bob" }), knownField({ userId: "alice", room: "lobby" })].sort());

    ledger.note("p1", { kind: "leave", connectionId: "a1", slot: 0, userId: "alice", room: "lobby" }, unchanged);
    ledger.note("p1", { kind: "disconnect", connectionId: "b1", slot: 0, userId: "bob" }, transition);
    expect(ledger.account().sort()).toEqual([knownField({ userId: "alice" }), knownField({ userId: "alice", room: "lobby" })].sort());
  });

  it("ignores answers under another process id, conflicts, and joins of connections it does not hold", () => {
    const ledger = new Ledger();
    ledger.reset("p2");
    ledger.note("p1", { kind: "connect", connectionId: "a1", slot: 0, userId: "alice", info: "" }, transition);
    ledger.note("p2", { kind: "connect", connectionId: "c1", slot: 0, userId: "carol", info: "" }, { type: "conflict" });
    ledger.note("p2", { kind: "join", connectionId: "x", slot: 0, userId: "xavier", room: "lobby" }, transition);
    expect(ledger.account()).toEqual([]);
  });

  it("starts over under a new process id", () => {
    const ledger = new Ledger();
    ledger.reset("p1");
    ledger.note("p1", { kind: "connect", connectionId: "a1", slot: 0, userId: "alice", info: "" }, transition);
    ledger.reset("p2");
    expect(ledger.processId).toBe("p2");
    expect(ledger.account()).toEqual([]);
  });
});
