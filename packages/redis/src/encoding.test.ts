import { describe, expect, it } from "vitest";
import {
  FenceReason,
  OPERATION_LETTERS,
  decodeOutcome,
  fenceOf,
  knownField,
  operationArguments,
  pack,
  parseKnownField,
  parseOutboxEntry,
  roomOfMembership,
  unpackPair,
} from "./encoding";
import { resolveIncludes } from "./lua-includes";
import { SCRIPTS } from "./scripts";

describe("the script boundary's encodings", () => {
  it("packs two strings of any content into one, by UTF-8 byte length", () => {
    for (const [a, b] of [
      ["c1", "lobby"],
      ["", "room"],
      ["ééé", "部屋"],
      ["12:34", ":5:x"],
      ["nul\u0000", "🦊"],
    ] as const) {
      expect(unpackPair(pack(a, b))).toEqual([a, b]);
    }
    expect(pack("ééé", "x")).toBe("6:éééx");
    expect(roomOfMembership(pack("12", "部屋"))).toBe("部屋");
    expect(() => unpackPair("no length")).toThrow(/not a packed pair/);
  });

  it("names every operation in TypeScript and gives apply.lua its letter and five arguments", () => {
    expect(OPERATION_LETTERS).toEqual({ connect: "c", republish: "r", disconnect: "d", join: "j", leave: "l", update: "u" });
    const room = () => 8;
    expect(operationArguments({ kind: "connect", connectionId: "c1", slot: 300, userId: "alice", info: "{}" }, room)).toEqual(["c", "c1", "300", "alice", "{}"]);
    expect(operationArguments({ kind: "disconnect", connectionId: "c1", slot: 300, userId: "alice" }, room)).toEqual(["d", "c1", "300", "alice", ""]);
    expect(operationArguments({ kind: "join", connectionId: "c1", slot: 300, userId: "alice", room: "lobby" }, room)).toEqual(["j", "c1", "300", "lobby", "8"]);
    expect(operationArguments({ kind: "update", userId: "alice", info: '{"a":1}' }, room)).toEqual(["u", "", "alice", '{"a":1}', ""]);
  });

  it("decodes apply.lua's results: unchanged, conflict, a version, a join's version with the info", () => {
    expect(decodeOutcome(0)).toEqual({ type: "unchanged" });
    expect(decodeOutcome(-1)).toEqual({ type: "conflict" });
    expect(decodeOutcome(1733112345123456)).toEqual({ type: "transition", version: 1733112345123456 });
    expect(decodeOutcome([1733112345123457, '{"name":"Al"}'])).toEqual({ type: "transition", version: 1733112345123457, info: '{"name":"Al"}' });
    for (const bad of [-2, 1.5, "x", null, [0, "{}"], [5, 7]]) expect(() => decodeOutcome(bad)).toThrow(/malformed apply result/);
  });

  it("parses outbox entries with their id and version", () => {
    const version = 1733112345123456;
    expect(parseOutboxEntry(`12|${version}|${pack("", "zoë")}`)).toEqual({ id: 12, transitions: [{ type: "disconnected", userId: "zoë", version }] });
    expect(parseOutboxEntry(`13|${version}|${pack("部屋", "a|b")}`)).toEqual({ id: 13, transitions: [{ type: "left", room: "部屋", userId: "a|b", version }] });
    // a dead process's last batch, taken from its record (includes/record.lua)
    expect(parseOutboxEntry(`14|${version}|c${pack("c1", '{"n":1}')}`)).toEqual({ id: 14, transitions: [{ type: "connected", userId: "c1", info: { n: 1 }, version }] });
    expect(parseOutboxEntry(`15|${version}|c${pack("c2", "")}`)).toEqual({ id: 15, transitions: [{ type: "connected", userId: "c2", version }] });
    expect(parseOutboxEntry(`16|${version}|u${pack("u", '{"n":2}')}`)).toEqual({ id: 16, transitions: [{ type: "updated", userId: "u", info: { n: 2 }, version }] });
    expect(parseOutboxEntry(`17|${version}|j${pack("1:", pack("j|1", ""))}`)).toEqual({ id: 17, transitions: [{ type: "joined", room: "1:", userId: "j|1", version }] });
    // a run of users gone offline (includes/outbox.lua's outbox_push_leaves), versions in order
    expect(parseOutboxEntry(`18|${version}|o${pack("zoë", "")}${pack("3:x|", "")}${pack("", "")}`)).toEqual({
      id: 18,
      transitions: [
        { type: "disconnected", userId: "zoë", version },
        { type: "disconnected", userId: "3:x|", version: version + 1 },
        { type: "disconnected", userId: "", version: version + 2 },
      ],
    });
    expect(() => parseOutboxEntry(`19|${version}|o4:ab`)).toThrow(/malformed run/);
    expect(() => parseOutboxEntry("12|zoë")).toThrow(/malformed outbox entry/);
  });

  it("keeps known users and known room members apart whatever the user id holds", () => {
    const tricky = `r:${pack("lobby", "alice")}`;
    expect(parseKnownField(knownField({ userId: tricky }))).toEqual({ userId: tricky });
    expect(parseKnownField(knownField({ userId: "alice", room: "lobby" }))).toEqual({ userId: "alice", room: "lobby" });
    expect(knownField({ userId: tricky })).not.toBe(knownField({ userId: "alice", room: "lobby" }));
  });

  it("maps fence codes to reasons in one place, and nothing else to a fence", () => {
    expect(fenceOf(-1)).toBe(FenceReason.Gone);
    expect(fenceOf(-2)).toBe(FenceReason.Behind);
    expect(fenceOf([0, 1])).toBeUndefined();
    expect(fenceOf(["claimed"])).toBeUndefined();
    expect(() => fenceOf(-9)).toThrow(/unknown fence code/);
  });
});

describe("Lua includes", () => {
  it("pulls each helper in once, before its first user, also when a helper includes another", () => {
    const includes = { "a.lua": "local A = 1", "b.lua": '--- @include "a.lua"\nlocal B = A + 1' };
    const resolved = resolveIncludes("s.lua", '--- @include "b.lua"\n--- @include "a.lua"\nreturn B', includes);
    expect(resolved.match(/local A = 1/g)).toHaveLength(1);
    expect(resolved.indexOf("local A = 1")).toBeLessThan(resolved.indexOf("local B = A + 1"));
    expect(() => resolveIncludes("s.lua", '--- @include "c.lua"', includes)).toThrow(/s.lua: unknown include "c.lua"/);
  });

  it("gives every script that decides a transition the one version counter", () => {
    for (const name of ["apply", "cleanup", "cleanupRooms", "known"] as const) {
      const { source } = SCRIPTS[name];
      expect(source.match(/local function next_version\b/g), name).toHaveLength(1);
      expect(source.match(/local function next_versions\b/g), name).toHaveLength(1);
      expect(source, name).not.toMatch(/--- @include/);
    }
    expect(SCRIPTS.heartbeat.source).not.toMatch(/next_version/);
  });
});
