import type { DiffEntry, DiffFrame, StateEntry, SyncScope } from "@presence/core/protocol";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_TOMBSTONES, applyDiff, applyState, emptyView, forgetVersions, type PresenceView, type ViewChange } from "./view";

type Info = { name?: string; status?: string };
const ALL: SyncScope = { type: "all" };

/** The visible part of a view: userId -> info, sorted. */
const visible = (view: PresenceView<Info>) =>
  Object.fromEntries([...view.users].sort(([a], [b]) => a.localeCompare(b)).map(([userId, { info }]) => [userId, info ?? null]));

const diff = (frame: Partial<DiffFrame>): DiffFrame => ({ key: "all", ...frame });

/** Applies frames in order, returning the last view and every change. */
function run(view: PresenceView<Info>, ...steps: Array<DiffFrame | { state: StateEntry[]; version: number | null; count?: number }>) {
  const changes: ViewChange<Info>[] = [];
  for (const step of steps) {
    const result = "state" in step ? applyState(view, step.state, step.version, step.count) : applyDiff(view, step, ALL);
    view = result.view;
    changes.push(...result.changes);
  }
  return { view, changes };
}

describe("applyState", () => {
  it("fills an empty view, with a join per user", () => {
    const { view, changes } = run(emptyView(), { state: [["alice", { name: "A" }], ["bob"]], version: 10 });
    expect(visible(view)).toEqual({ alice: { name: "A" }, bob: null });
    expect(changes).toEqual([
      { type: "join", userId: "alice", info: { name: "A" } },
      { type: "join", userId: "bob", info: undefined },
    ]);
    expect(view.floor).toBe(10);
  });

  it("removes the held users it does not list, and reports only what changed", () => {
    const first = run(emptyView(), { state: [["alice", { name: "A" }], ["bob"]], version: 10 }).view;
    const { view, changes } = run(first, { state: [["alice", { name: "A2" }], ["carol"]], version: 20 });
    expect(visible(view)).toEqual({ alice: { name: "A2" }, carol: null });
    expect(changes).toEqual([
      { type: "leave", userId: "bob" },
      { type: "update", userId: "alice", info: { name: "A2" } },
      { type: "join", userId: "carol", info: undefined },
    ]);
    // the same state again changes nothing anyone can see
    expect(run(view, { state: [["alice", { name: "A2" }], ["carol"]], version: 20 }).changes).toEqual([]);
  });

  it("keeps what diffs newer than the state said while it was read", () => {
    let view = emptyView<Info>();
    // while the state (as of 10) is read: dave joins at 12, erin leaves at 13, frank's join at 8 is in the state already
    view = run(view, diff({ joins: [["dave", 12, { name: "D" }], ["frank", 8]], leaves: [["erin", 13]] })).view;
    const { view: after } = run(view, { state: [["erin", { name: "E" }], ["frank"]], version: 10 });
    expect(visible(after)).toEqual({ dave: { name: "D" }, frank: null });
    expect(after.users.get("frank")?.version).toBe(10);
    expect(after.tombstones.get("erin")).toBe(13); // newer than the floor: kept
  });

  it("removes a user that a diff older than the state listed", () => {
    const view = run(emptyView(), diff({ joins: [["ghost", 5]] }), { state: [], version: 10 }).view;
    expect(visible(view)).toEqual({});
  });

  it("forgets the tombstones it covers", () => {
    const view = run(emptyView(), diff({ leaves: [["a", 5], ["b", 15]] }), { state: [], version: 10 }).view;
    expect([...view.tombstones]).toEqual([["b", 15]]);
  });

  it("with version null, replaces the view whole", () => {
    const held = run(emptyView(), diff({ joins: [["newer", 99]], leaves: [["gone", 98]] })).view;
    const { view } = run(held, { state: [["gone"], ["x"]], version: null });
    expect(visible(view)).toEqual({ gone: null, x: null });
    expect(view.tombstones.size).toBe(0);
  });

  it("takes a newer early update for a user it lists", () => {
    const view = run(emptyView(), diff({ updates: [["alice", 12, { status: "away" }]] }), { state: [["alice", { status: "here" }]], version: 10 }).view;
    expect(visible(view)).toEqual({ alice: { status: "away" } });
    expect(view.early.size).toBe(0);
  });
});

describe("applyDiff", () => {
  it("applies joins, updates and leaves, with their events", () => {
    const { view, changes } = run(
      emptyView(),
      diff({ joins: [["alice", 1, { name: "A" }], ["bob", 2]] }),
      diff({ updates: [["alice", 3, { name: "A", status: "away" }]] }),
      diff({ leaves: [["bob", 4]] }),
    );
    expect(visible(view)).toEqual({ alice: { name: "A", status: "away" } });
    expect(changes.map((c) => `${c.type}:${"userId" in c ? c.userId : ""}`)).toEqual(["join:alice", "join:bob", "update:alice", "leave:bob"]);
  });

  it("drops a leave that arrives after a newer rejoin, and a join that arrives after a newer leave", () => {
    const joined = run(emptyView(), diff({ joins: [["dave", 7]] }), diff({ leaves: [["dave", 5]] }));
    expect(visible(joined.view)).toEqual({ dave: null });
    const left = run(emptyView(), diff({ leaves: [["erin", 7]] }), diff({ joins: [["erin", 5]] }));
    expect(visible(left.view)).toEqual({});
    expect(left.changes).toEqual([]);
  });

  it("changes nothing, not even the object, for a duplicate or another scope's frame", () => {
    const frame = diff({ joins: [["alice", 1]] });
    const { view } = run(emptyView(), frame);
    expect(applyDiff(view, frame, ALL)).toEqual({ view, changes: [] });
    expect(applyDiff(view, { key: "room:x", leaves: [["alice", 9]] }, ALL).view).toBe(view);
    expect(applyDiff(view, diff({ updates: [["alice", 2]] }), ALL).changes).toEqual([]); // the same info, newer
  });

  it("ignores changes older than the floor", () => {
    const view = run(emptyView(), { state: [["alice"]], version: 10 }, diff({ leaves: [["alice", 9]], joins: [["bob", 10]] })).view;
    expect(visible(view)).toEqual({ alice: null });
  });

  it("does not list a user from an update alone, but uses it when their older join comes late", () => {
    const early = run(emptyView(), diff({ updates: [["alice", 6, { status: "away" }]] }));
    expect(visible(early.view)).toEqual({});
    expect(early.changes).toEqual([]);
    const late = run(early.view, diff({ joins: [["alice", 5, { status: "here" }]] }));
    expect(visible(late.view)).toEqual({ alice: { status: "away" } });
    expect(late.view.users.get("alice")?.version).toBe(6);
    // a newer leave drops the early update for good
    const gone = run(early.view, diff({ leaves: [["alice", 7]] }), diff({ joins: [["alice", 5]] }));
    expect(visible(gone.view)).toEqual({});
  });

  it("applies unversioned changes in the order they arrive", () => {
    const { view } = run(emptyView(), diff({ joins: [["a", null], ["b", null]] }), diff({ leaves: [["a", null]] }), diff({ joins: [["a", null, { name: "again" }]] }));
    expect(visible(view)).toEqual({ a: { name: "again" }, b: null });
  });

  it("keeps a list's users only, from the users key", () => {
    const scope: SyncScope = { type: "users", userIds: ["alice"] };
    const frame: DiffFrame = { key: "users", joins: [["alice", 1], ["mallory", 2]] };
    expect(visible(applyDiff(emptyView<Info>(), frame, scope).view)).toEqual({ alice: null });
    expect(applyDiff(emptyView<Info>(), { ...frame, key: "all" }, scope).changes).toEqual([]);
  });

  it("follows a room's key", () => {
    const scope: SyncScope = { type: "room", room: "general" };
    expect(visible(applyDiff(emptyView<Info>(), { key: "room:general", joins: [["a", 1]] }, scope).view)).toEqual({ a: null });
    expect(visible(applyDiff(emptyView<Info>(), { key: "room:other", joins: [["a", 1]] }, scope).view)).toEqual({});
  });

  it("keeps the newest count, or the last one when unversioned", () => {
    const count: SyncScope = { type: "count" };
    let view = applyState(emptyView<Info>(), [], 10, 3).view;
    view = applyDiff(view, { key: "count", count: 5, version: 12 }, count).view;
    const stale = applyDiff(view, { key: "count", count: 4, version: 11 }, count);
    expect([stale.view.count, stale.changes]).toEqual([5, []]);
    expect(applyDiff(view, { key: "count", count: 6, version: 13 }, count).changes).toEqual([{ type: "count", count: 6 }]);
    const unversioned = applyDiff(applyDiff(view, { key: "count", count: 1, version: null }, count).view, { key: "count", count: 2 }, count);
    expect(unversioned.view.count).toBe(2);
  });

  it("keeps its tombstones bounded, the floor rising over the older half", () => {
    const leaves: DiffEntry[] = Array.from({ length: MAX_TOMBSTONES + 1 }, (_, i) => [`u${i}`, i + 1]);
    const { view } = run(emptyView(), diff({ leaves }));
    expect(view.tombstones.size).toBeLessThanOrEqual(MAX_TOMBSTONES / 2 + 1);
    expect(view.floor).toBeGreaterThan(0);
    // a stale join older than the floor stays out; a new one is in
    expect(visible(run(view, diff({ joins: [["u1", 0.5], ["new", MAX_TOMBSTONES + 2]] })).view)).toEqual({ new: null });
  });
});

describe("forgetVersions", () => {
  it("keeps the users in view and lets the next state (of any version) settle them", () => {
    const before = run(emptyView(), diff({ joins: [["alice", 100], ["bob", 101]], leaves: [["carol", 102]] })).view;
    const forgotten = forgetVersions(before);
    expect(visible(forgotten)).toEqual(visible(before));
    expect([forgotten.floor, forgotten.tombstones.size]).toEqual([-Infinity, 0]);
    // a new server whose versions start lower
    const { view, changes } = run(forgotten, { state: [["alice"], ["carol"]], version: 5 });
    expect(visible(view)).toEqual({ alice: null, carol: null });
    expect(changes).toEqual([{ type: "leave", userId: "bob" }, { type: "join", userId: "carol", info: undefined }]);
  });
});

/**
 * The model: a history of changes, each with the next version, to a few
 * users. The server sends them as diffs (coalesced per user in ticks) and a
 * state read as of some version (each user's entry as of that version or
 * later, as a read in pages is); the client gets the frames shuffled, some
 * twice.
 */
type Op = { userId: string; kind: "join" | "leave" | "update"; info: Info };
const USERS = ["a", "b", "c", "d", "e"];
const ops = fc.array(
  fc.record({
    userId: fc.constantFrom(...USERS),
    kind: fc.constantFrom("join", "leave", "update") as fc.Arbitrary<Op["kind"]>,
    info: fc.record({ status: fc.constantFrom("here", "away", "busy") }),
  }),
  { minLength: 1, maxLength: 40 },
);

/** The truth after each version: userId -> info for the online users. Versions start at 1. */
function history(list: Op[]) {
  const truth: Array<Map<string, Info>> = [new Map()];
  const changes: Array<{ version: number; op: Op }> = [];
  for (const op of list) {
    const now = new Map(truth.at(-1));
    const online = now.has(op.userId);
    // only the changes a store would decide: a join of an offline user, a leave or an update of an online one
    if ((op.kind === "join") === online) continue;
    if (op.kind === "leave") now.delete(op.userId);
    else now.set(op.userId, op.info);
    truth.push(now);
    changes.push({ version: truth.length - 1, op });
  }
  return { truth, changes };
}

/**
 * Diff frames as the server sends them: ticks of consecutive changes, one
 * entry per user with the version of their newest change in the tick (a join
 * then an update is a join with the newest info).
 */
function frames(changes: Array<{ version: number; op: Op }>, cuts: number[]): DiffFrame[] {
  const out: DiffFrame[] = [];
  let tick: typeof changes = [];
  const flush = () => {
    const newest = new Map<string, { version: number; op: Op }>();
    for (const change of tick) {
      const before = newest.get(change.op.userId);
      const joined = change.op.kind === "update" && before?.op.kind === "join";
      newest.set(change.op.userId, joined ? { version: change.version, op: { ...change.op, kind: "join" } } : change);
    }
    const frame: DiffFrame = { key: "all" };
    for (const { version, op } of newest.values()) {
      const list = (frame[`${op.kind}s`] ??= []);
      list.push(op.kind === "leave" ? [op.userId, version] : [op.userId, version, op.info]);
    }
    if (newest.size > 0) out.push(frame);
    tick = [];
  };
  changes.forEach((change, i) => {
    tick.push(change);
    if (cuts.includes(i)) flush();
  });
  flush();
  return out;
}

/** A state read as of `at`, each user's entry as of some version from `at` on (a read in pages, while changes go on). */
function stateAt(truth: Array<Map<string, Info>>, at: number, lag: number[]): StateEntry[] {
  return USERS.flatMap((userId, i) => {
    const seen = truth[Math.min(truth.length - 1, at + (lag[i] ?? 0))]!;
    const info = seen.get(userId);
    return info ? [[userId, info] as StateEntry] : [];
  });
}

/** A small seeded generator (mulberry32): shuffles that are uniform, where fast-check's numbers lean to the edges. */
function random(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: T[], next: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Where ticks end: after each change with probability `p`. */
const ticks = (count: number, next: () => number, p = next()) => Array.from({ length: count }, (_, i) => i).filter(() => next() < p);

const asVisible = (truth: Map<string, Info>) => Object.fromEntries([...truth].sort(([a], [b]) => a.localeCompare(b)));

describe("the view ends at the truth (randomized)", () => {
  const scenario = fc.record({ ops, seed: fc.integer() });

  it("from every diff, shuffled and duplicated, with a state read as of any version arriving anywhere among them", () => {
    fc.assert(
      fc.property(scenario, ({ ops, seed }) => {
        const next = random(seed);
        const { truth, changes } = history(ops);
        const diffs = frames(changes, ticks(changes.length, next));
        const sent = shuffled([...diffs, ...diffs.filter(() => next() < 0.2)], next);
        const version = Math.floor(next() * truth.length);
        const lag = USERS.map(() => Math.floor(next() * 4));
        const position = Math.floor(next() * (sent.length + 1));
        let view = emptyView<Info>();
        const mirror = new Map<string, Info | undefined>();
        const steps = [...sent.slice(0, position), "state" as const, ...sent.slice(position)];
        for (const step of steps) {
          const before = JSON.stringify(visible(view));
          const result = step === "state" ? applyState(view, stateAt(truth, version, lag), version) : applyDiff(view, step, ALL);
          view = result.view;
          // the events tell exactly what changed: replayed, they give the view; none when nothing visible changed
          for (const change of result.changes) {
            if (change.type === "leave") mirror.delete(change.userId);
            else if (change.type !== "count") mirror.set(change.userId, change.info);
          }
          expect(Object.fromEntries([...mirror].map(([u, i]) => [u, i ?? null]))).toEqual(visible(view));
          expect(result.changes.length > 0).toBe(JSON.stringify(visible(view)) !== before);
        }
        expect(visible(view)).toEqual(asVisible(truth.at(-1)!));
      }),
      { numRuns: 1000 },
    );
  });

  it("after diffs lost on the way, once a state as of the last version is read", () => {
    fc.assert(
      fc.property(scenario, ({ ops, seed }) => {
        const next = random(seed);
        const { truth, changes } = history(ops);
        const diffs = frames(changes, ticks(changes.length, next)).filter(() => next() < 0.7);
        const at = Math.floor(next() * truth.length);
        let view = applyState(emptyView<Info>(), stateAt(truth, at, USERS.map(() => Math.floor(next() * 4))), at).view;
        for (const frame of shuffled(diffs, next)) view = applyDiff(view, frame, ALL).view;
        view = applyState(view, stateAt(truth, truth.length - 1, []), truth.length - 1).view;
        expect(visible(view)).toEqual(asVisible(truth.at(-1)!));
      }),
      { numRuns: 500 },
    );
  });

  it("after a reconnect to a server whose versions start anywhere", () => {
    fc.assert(
      fc.property(fc.record({ ops, seed: fc.integer(), offset: fc.integer({ min: -1000, max: 1000 }) }), ({ ops, seed, offset }) => {
        const next = random(seed);
        const { truth, changes } = history(ops);
        const half = Math.floor(next() * (changes.length + 1));
        let view = emptyView<Info>();
        for (const frame of shuffled(frames(changes.slice(0, half), ticks(half, next)), next)) view = applyDiff(view, frame, ALL).view;
        // the new server's versions are shifted: its state and the diffs after it
        view = forgetVersions(view);
        const shift = (frame: DiffFrame): DiffFrame => ({
          key: frame.key,
          ...Object.fromEntries(
            (["joins", "leaves", "updates"] as const).flatMap((kind) =>
              frame[kind] ? [[kind, frame[kind].map(([u, v, i]) => (i ? [u, v! + offset, i] : [u, v! + offset]))]] : [],
            ),
          ),
        });
        // the state is read as of the last change before the reconnect; the later ones come as diffs
        const at = half === 0 ? 0 : changes[half - 1]!.version;
        const rest = changes.slice(half);
        const steps = shuffled([...frames(rest, ticks(rest.length, next)).map(shift), "state" as const], next);
        for (const step of steps) {
          view = step === "state" ? applyState(view, stateAt(truth, at, USERS.map(() => Math.floor(next() * 4))), at + offset).view : applyDiff(view, step, ALL).view;
        }
        expect(visible(view)).toEqual(asVisible(truth.at(-1)!));
      }),
      { numRuns: 500 },
    );
  });

  it("with an unversioned store, from the diffs in order and a state read at the start", () => {
    fc.assert(
      fc.property(scenario, ({ ops, seed }) => {
        const next = random(seed);
        const { truth, changes } = history(ops);
        const unversioned = frames(changes, ticks(changes.length, next)).map((frame) => ({
          ...frame,
          ...Object.fromEntries((["joins", "leaves", "updates"] as const).flatMap((kind) => (frame[kind] ? [[kind, frame[kind].map(([u, , i]) => [u, null, i])]] : []))),
        }));
        let view = run(emptyView(), diff({ joins: [["stale", null]] })).view;
        view = applyState(view, [], null).view;
        for (const frame of unversioned) view = applyDiff(view, frame, ALL).view;
        expect(visible(view)).toEqual(asVisible(truth.at(-1)!));
      }),
      { numRuns: 300 },
    );
  });
});
