import { describe, expect, it } from "vitest";
import { InvalidOptionError } from "./errors";
import { assertImplements, assertKnownOptions, closestName, integerOption } from "./options";

describe("options", () => {
  it("names an unknown option and suggests the closest one", () => {
    expect(() => assertKnownOptions("createPresence", { leaveDelay: 1 }, ["leaveDelayMs", "store"])).toThrow(/`leaveDelay` is not an option: did you mean `leaveDelayMs`\?/);
    expect(() => assertKnownOptions("x", { zzz: 1 }, ["store"])).toThrow(InvalidOptionError);
    expect(() => assertKnownOptions("x", 5, ["store"])).toThrow(/must be an object/);
    expect(closestName("heartbeatMS", ["heartbeatMs", "leaseTimeoutMs"])).toBe("heartbeatMs");
    expect(closestName("q", ["heartbeatMs"])).toBeUndefined();
  });

  it("checks numbers and contracts with typed errors", () => {
    expect(integerOption("x", "n", undefined, 7)).toBe(7);
    expect(() => integerOption("x", "leaveDelayMs", -5, 7)).toThrow(/`leaveDelayMs` must be an integer of at least 0, got -5/);
    expect(() => integerOption("x", "n", "3", 7)).toThrow(InvalidOptionError);
    expect(() => assertImplements("createPresence", "store", {}, ["connect", "close"], "a PresenceStore")).toThrow(/missing connect\(\), close\(\)/);
  });
});
