import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { packDiff, packState, unpackDiff, unpackState, type DiffEntry, type DiffFrame, type StateFrame } from "./protocol";

const userId = fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.constantFrom("__proto__", "constructor", "0", "[]"));
const info = fc.option(fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string(), fc.integer(), fc.boolean())), { nil: undefined });
/** Frames as the server builds them: versioned or not, each user at most once. */
const diffFrame: fc.Arbitrary<DiffFrame> = fc.boolean().chain((versioned) => {
  const version = versioned ? fc.integer({ min: 1, max: 2 ** 40 }) : fc.constant(null);
  const list = (withInfo: boolean) =>
    fc.array(fc.tuple(userId, version, withInfo ? info : fc.constant(undefined)), { maxLength: 6 }).map((entries) =>
      entries.map(([id, v, i]): DiffEntry => (i === undefined ? [id, v] : [id, v, i])),
    );
  return fc.oneof(
    fc.record({ key: fc.constant("count"), count: fc.nat(), version }),
    fc.tuple(fc.constantFrom("all", "users", "room:lobby", "room:"), list(true), list(false), list(true)).map(([key, joins, leaves, updates]) => {
      const seen = new Set<string>();
      const once = (entries: DiffEntry[]) => entries.filter(([id]) => !seen.has(id) && seen.add(id));
      const frame: DiffFrame = { key };
      const [j, l, u] = [once(joins), once(leaves), once(updates)];
      if (j.length > 0) frame.joins = j;
      if (l.length > 0) frame.leaves = l;
      if (u.length > 0) frame.updates = u;
      return frame;
    }),
  );
});
const stateFrame: fc.Arbitrary<StateFrame> = fc.oneof(
  fc.record({ key: fc.constant("count"), request: fc.nat(), version: fc.option(fc.nat(), { nil: null }), count: fc.nat(), done: fc.boolean() }),
  fc
    .record({ key: fc.constantFrom("all", "users", "room:a"), request: fc.nat(), version: fc.option(fc.nat(), { nil: null }), users: fc.array(fc.tuple(userId, info)), done: fc.boolean() })
    .map(({ users, ...frame }) => ({ ...frame, users: users.map(([id, i]) => (i === undefined ? [id] : [id, i]) as [string, Record<string, unknown>?]) })),
);

/** Through JSON, as Socket.IO carries it. */
const wire = <T>(value: T): unknown => JSON.parse(JSON.stringify(value));

describe("the packed wire form (protocol 4)", () => {
  it("gives back every diff frame as it was", () => {
    fc.assert(fc.property(diffFrame, (frame) => {
          expect(unpackDiff(wire(packDiff(frame)))).toEqual(frame);
        }), { numRuns: 500 });
  });

  it("gives back every state frame as it was", () => {
    fc.assert(fc.property(stateFrame, (frame) => {
          expect(unpackState(wire(packState(frame)))).toEqual(frame);
        }), { numRuns: 500 });
  });

  it("costs little more than the ids: a join is its id and a small offset", () => {
    const frame: DiffFrame = { key: "room:r1", joins: [["user-612", 1_796_356_479_522_015], ["user-613", 1_796_356_479_522_016]] };
    expect(JSON.stringify(packDiff(frame))).toBe('["room:r1",1796356479522015,["user-612",0,"user-613",1]]');
    expect(JSON.stringify(packDiff({ key: "count", count: 2345, version: 77 }))).toBe('["count",77,2345]');
  });

  it("refuses what is not a frame, without throwing", () => {
    const junk = [null, 7, "x", {}, [], [1], ["k", "v"], ["k", 1, [1, 2]], ["k", 1, ["a"]], ["k", 1, ["a", 0], 0, 0, [0, "info"]], ["k", 1, ["a", 0], { length: 2 }]];
    for (const packed of junk) expect(unpackDiff(packed), JSON.stringify(packed)).toBeUndefined();
    const states = [null, [], ["k", 1, 1, 2, []], ["k", "1", 1, 1, []], ["k", 1, 1, 1, [7]], ["k", 1, 1, 1, ["a"], [0, null]]];
    for (const packed of states) expect(unpackState(packed), JSON.stringify(packed)).toBeUndefined();
  });
});
