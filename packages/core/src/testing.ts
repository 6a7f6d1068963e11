import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectionConflictError, InvalidRoomError, InvalidUserIdError, InvalidUserInfoError, StoreClosedError } from "./errors";
import type { PresenceStore, Transition, UserPresence } from "./store";

export {
  DEPLOYMENT_CASES,
  describePresenceDeployment,
  type DeploymentCase,
  type DeploymentSuiteOptions,
  type PresenceDeployment,
} from "./deployment-testing";

export interface ConformanceOptions {
  /**
   * Makes a fresh, empty store: a deployment of its own, sharing nothing with
   * the stores of other tests.
   */
  create: () => PresenceStore | Promise<PresenceStore>;
  /** Runs of the model-based property test. @default 50 */
  numRuns?: number;
  /** Users in the "many users" test. @default 1000 */
  manyUsers?: number;
  /** Per-test timeout in ms. @default 20000 */
  timeout?: number;
}

export { eventually, sleep, waitFor } from "./waiting";
import { eventually } from "./waiting";

/** Awaits every page of `store.roomUsers(room)` and returns them flattened. */
export async function collectRoom(store: PresenceStore, room: string): Promise<UserPresence[]> {
  const users: UserPresence[] = [];
  for await (const page of store.roomUsers(room, { pageSize: 7 })) users.push(...page);
  return users;
}

/** Awaits every page of `store.users()` and returns them flattened. */
export async function collectUsers(store: PresenceStore, pageSize?: number): Promise<string[]> {
  const users: string[] = [];
  for await (const page of store.users(pageSize === undefined ? undefined : { pageSize })) {
    for (const entry of page) users.push(entry.userId);
  }
  return users;
}

const sorted = (values: Iterable<string>) => [...values].sort();

/**
 * The conformance suite every `PresenceStore` runs against itself, the way
 * socket.io-redis-adapter runs one test suite against each Redis client.
 *
 * ```ts
 * describePresenceStore("memory", { create: () => new MemoryStore() });
 * ```
 */
export function describePresenceStore(name: string, options: ConformanceOptions): void {
  const { numRuns = 50, manyUsers = 1000, timeout = 20_000 } = options;

  describe(`PresenceStore conformance: ${name}`, { timeout }, () => {
    const open: PresenceStore[] = [];
    const create = async () => {
      const store = await options.create();
      open.push(store);
      return store;
    };

    afterEach(async () => {
      await Promise.allSettled(open.splice(0).map((store) => store.close()));
    });

    it("counts a user once however many tabs they hold", async () => {
      const store = await create();
      expect(await store.connect("a1", "alice")).toBe(true);
      expect(await store.connect("a2", "alice")).toBe(false);
      expect(await store.connect("b1", "bob")).toBe(true);
      expect(await store.usersCount()).toBe(2);
      expect(sorted(await store.usersList())).toEqual(["alice", "bob"]);

      expect(await store.disconnect("a1")).toBe(false);
      expect(await store.isUserConnected("alice")).toBe(true);
      expect(await store.disconnect("a2")).toBe(true);
      expect(await store.isUserConnected("alice")).toBe(false);
      expect(await store.usersList()).toEqual(["bob"]);
      expect(await store.usersCount()).toBe(1);
    });

    it("reports how many connections each user holds", async () => {
      const store = await create();
      await store.connect("a1", "alice");
      await store.connect("a2", "alice");
      await store.connect("b1", "bob");
      const counts: Record<string, number> = {};
      for await (const page of store.users()) {
        for (const { userId, connections } of page) counts[userId] = connections;
      }
      expect(counts).toEqual({ alice: 2, bob: 1 });
    });

    it("ignores a repeated connect or disconnect of the same connection", async () => {
      const store = await create();
      expect(await store.connect("a1", "alice")).toBe(true);
      expect(await store.connect("a1", "alice")).toBe(false);
      expect(await store.disconnect("a1")).toBe(true);
      expect(await store.disconnect("a1")).toBe(false);
      expect(await store.disconnect("never-seen")).toBe(false);
      expect(await store.usersCount()).toBe(0);
      expect(await store.usersList()).toEqual([]);
    });

    it("refuses to move a connection to another user, changing nothing", async () => {
      const store = await create();
      await store.connect("c1", "alice");
      await expect(store.connect("c1", "bob")).rejects.toBeInstanceOf(ConnectionConflictError);
      expect(await store.isUserConnected("bob")).toBe(false);
      expect(await store.usersList()).toEqual(["alice"]);
      expect(await store.disconnect("c1")).toBe(true);
    });

    it("rejects invalid user ids with InvalidUserIdError and counts nothing", async () => {
      const store = await create();
      const bad: unknown[] = ["", 42, null, undefined, {}, "x".repeat(257), "\ud800"];
      for (const userId of bad) {
        await expect(store.connect("c1", userId as string)).rejects.toBeInstanceOf(InvalidUserIdError);
      }
      expect(await store.usersCount()).toBe(0);
      // the connection id was not taken by any of the refused calls
      expect(await store.connect("c1", "alice")).toBe(true);
    });

    it("stores awkward but valid ids as inert data", async () => {
      const store = await create();
      const ids = ["a:b", "{tag}", "}{", "line\nbreak", "nul\u0000byte", "🦊 fox", "*", "x".repeat(256)];
      for (const [i, userId] of ids.entries()) {
        expect(await store.connect(`c${i}`, userId)).toBe(true);
      }
      expect(sorted(await store.usersList())).toEqual(sorted(ids));
      for (const userId of ids) expect(await store.isUserConnected(userId)).toBe(true);
      expect(await store.isUserConnected("a")).toBe(false);
    });

    it("announces exactly one transition per user under concurrent calls", async () => {
      const store = await create();
      const tabs = Array.from({ length: 20 }, (_, i) => `t${i}`);
      const joined = await Promise.all(tabs.map((tab) => store.connect(tab, "alice")));
      expect(joined.filter(Boolean)).toHaveLength(1);
      const left = await Promise.all(tabs.map((tab) => store.disconnect(tab)));
      expect(left.filter(Boolean)).toHaveLength(1);
      expect(await store.usersCount()).toBe(0);
    });

    it("keeps per-connection order when calls are interleaved across users", async () => {
      const store = await create();
      const calls: Promise<boolean>[] = [];
      for (let i = 0; i < 50; i++) {
        calls.push(store.connect(`c${i}`, `user${i % 5}`));
        if (i % 2 === 0) calls.push(store.disconnect(`c${i}`));
      }
      await Promise.all(calls);
      // odd connections remain: users 1 and 3 hold c1, c3, ...; 0, 2, 4 have odd ones too
      const expected = new Set<string>();
      for (let i = 1; i < 50; i += 2) expected.add(`user${i % 5}`);
      expect(sorted(await store.usersList())).toEqual(sorted(expected));
    });

    it("lists many users, in pages, each once", async () => {
      const store = await create();
      const ids = Array.from({ length: manyUsers }, (_, i) => `user-${i}`);
      await Promise.all(ids.map((userId) => store.connect(`conn-${userId}`, userId)));
      expect(await store.usersCount()).toBe(manyUsers);
      const paged = await collectUsers(store, 64);
      expect(paged).toHaveLength(manyUsers);
      expect(sorted(paged)).toEqual(sorted(ids));
      expect(sorted(await store.usersList())).toEqual(sorted(ids));
    });

    it("close() announces the users it leaves offline, once each, then refuses calls", async () => {
      const store = await create();
      const seen: Transition[] = [];
      store.onTransition((t) => seen.push(t));
      await store.connect("a1", "alice");
      await store.connect("a2", "alice");
      await store.connect("b1", "bob");
      seen.length = 0;
      await store.close();
      expect(seen.filter((t) => t.type === "disconnected").map((t) => t.userId).sort()).toEqual([
        "alice",
        "bob",
      ]);
      expect(seen.filter((t) => t.type === "connected")).toEqual([]);
      await expect(store.connect("c1", "carol")).rejects.toBeInstanceOf(StoreClosedError);
      await expect(store.usersCount()).rejects.toBeInstanceOf(StoreClosedError);
      await store.close(); // closing twice is harmless
    });

    it("tracks who is in a room, counting a user once across tabs", async () => {
      const store = await create();
      await store.connect("a1", "alice");
      await store.connect("a2", "alice");
      await store.connect("b1", "bob");
      expect(await store.join("a1", "lobby")).toBe(true);
      expect(await store.join("a2", "lobby")).toBe(false);
      expect(await store.join("a2", "lobby")).toBe(false); // a repeat
      expect(await store.join("b1", "lobby")).toBe(true);
      expect(await store.join("b1", "kitchen")).toBe(true);
      expect(await store.join("ghost", "lobby")).toBe(false); // not connected: ignored
      expect(await store.roomUsersCount("lobby")).toBe(2);
      expect(await store.roomUsersCount("kitchen")).toBe(1);
      expect(await store.roomUsersCount("attic")).toBe(0);
      expect((await collectRoom(store, "lobby")).map((u) => u.userId).sort()).toEqual(["alice", "bob"]);
      expect((await collectRoom(store, "lobby")).find((u) => u.userId === "alice")?.connections).toBe(2);
      expect(await collectRoom(store, "kitchen")).toEqual([{ userId: "bob", connections: 1 }]);

      expect(await store.leave("a1", "lobby")).toBe(false);
      expect(await store.isUserInRoom("alice", "lobby")).toBe(true);
      expect(await store.leave("a2", "lobby")).toBe(true);
      expect(await store.leave("a2", "lobby")).toBe(false); // a repeat
      expect(await store.isUserInRoom("alice", "lobby")).toBe(false);
      expect(await store.isUserInRoom("bob", "lobby")).toBe(true);
      expect(await store.isUserConnected("alice")).toBe(true); // leaving a room is not going offline
    });

    it("takes a disconnected connection out of its rooms, announcing who left", async () => {
      const store = await create();
      const seen: Transition[] = [];
      store.onTransition((t) => seen.push(t));
      await store.connect("a1", "alice");
      await store.connect("a2", "alice");
      await store.join("a1", "lobby");
      await store.join("a1", "kitchen");
      await store.join("a2", "lobby");
      const lefts = () => seen.filter((t) => t.type === "left").map(({ type, room, userId }) => ({ type, room, userId }));
      expect(await store.disconnect("a1")).toBe(false);
      expect(lefts()).toEqual([{ type: "left", room: "kitchen", userId: "alice" }]);
      expect(await store.isUserInRoom("alice", "lobby")).toBe(true);
      expect(await store.disconnect("a2")).toBe(true);
      expect(lefts()).toEqual([
        { type: "left", room: "kitchen", userId: "alice" },
        { type: "left", room: "lobby", userId: "alice" },
      ]);
      expect(await store.roomUsersCount("lobby")).toBe(0);
    });

    it("keeps a user's info while they are online: listed, updated, then gone", async () => {
      const store = await create();
      const info = { name: "Alice", status: "writing", tags: ["a"] };
      expect(await store.connect("a1", "alice", info)).toBe(true);
      info.name = "changed by the caller afterwards";
      expect(await store.userInfo("alice")).toEqual({ name: "Alice", status: "writing", tags: ["a"] });
      await store.connect("b1", "bob");
      expect(await store.userInfo("bob")).toBeUndefined();
      await store.join("a1", "lobby");
      const listed = await collectRoom(store, "lobby");
      expect(listed).toEqual([{ userId: "alice", connections: 1, info: { name: "Alice", status: "writing", tags: ["a"] } }]);
      const all: UserPresence[] = [];
      for await (const page of store.users()) all.push(...page);
      expect(all.find((u) => u.userId === "alice")?.info).toEqual({ name: "Alice", status: "writing", tags: ["a"] });

      expect(await store.updateInfo("alice", { name: "Alice", status: "away" })).toBe(true);
      expect(await store.userInfo("alice")).toEqual({ name: "Alice", status: "away" });
      expect(await store.updateInfo("carol", { name: "Carol" })).toBe(false);
      expect(await store.userInfo("carol")).toBeUndefined();

      await store.disconnect("a1");
      expect(await store.userInfo("alice")).toBeUndefined();
      await store.connect("a2", "alice");
      expect(await store.userInfo("alice")).toBeUndefined(); // gone with the user, not kept for later
    });

    it("rejects invalid rooms and info with typed errors, changing nothing", async () => {
      const store = await create();
      await store.connect("a1", "alice");
      for (const room of ["", 7, null, "r".repeat(257)]) {
        await expect(store.join("a1", room as string)).rejects.toBeInstanceOf(InvalidRoomError);
      }
      for (const info of [[], "name", 42, null, { big: "x".repeat(2000) }, new Date()]) {
        await expect(store.connect("b1", "bob", info as never)).rejects.toBeInstanceOf(InvalidUserInfoError);
        await expect(store.updateInfo("alice", info as never)).rejects.toBeInstanceOf(InvalidUserInfoError);
      }
      expect(await store.isUserConnected("bob")).toBe(false);
      expect(await store.usersList()).toEqual(["alice"]);
    });

    it("close() announces the rooms its connections leave", async () => {
      const store = await create();
      const seen: Transition[] = [];
      store.onTransition((t) => seen.push(t));
      await store.connect("a1", "alice");
      await store.join("a1", "lobby");
      await store.close();
      expect(seen).toContainEqual(expect.objectContaining({ type: "left", room: "lobby", userId: "alice" }));
      expect(seen).toContainEqual(expect.objectContaining({ type: "disconnected", userId: "alice" }));
    });

    it("announces each transition a call decides once, before the call resolves, in the decider's order", async () => {
      const store = await create();
      const seen: Transition[] = [];
      store.onTransition((t) => seen.push(t));
      const shape = () => seen.map((t) => [t.type, "room" in t ? t.room : "", t.userId].join(":"));
      await store.connect("a1", "alice", { name: "Alice" });
      expect(shape()).toEqual(["connected::alice"]);
      await store.connect("a2", "alice");
      await store.join("a1", "lobby");
      await store.join("a2", "lobby");
      await store.updateInfo("alice", { name: "Al" });
      expect(await store.updateInfo("bob", { name: "Bob" })).toBe(false);
      await store.leave("a1", "lobby");
      await store.leave("a2", "lobby");
      await store.disconnect("a1");
      await store.disconnect("a2");
      await store.disconnect("a2");
      expect(shape()).toEqual(["connected::alice", "joined:lobby:alice", "updated::alice", "left:lobby:alice", "disconnected::alice"]);
      expect(seen[0]).toMatchObject({ info: { name: "Alice" } });
      const versions = seen.map((t) => t.version);
      if (versions.some((version) => version !== undefined)) {
        // a store that versions its transitions versions every one, in the order it decided them
        for (const [i, version] of versions.entries()) {
          expect(Number.isSafeInteger(version), `version of ${shape()[i]}`).toBe(true);
          if (i > 0) expect(version!).toBeGreaterThan(versions[i - 1]!);
        }
      }
    });

    it("reads users' states in the order asked, each as of a version that orders it against their changes", async () => {
      const store = await create();
      const seen: Transition[] = [];
      store.onTransition((t) => seen.push(t));
      await store.connect("a1", "alice", { name: "Alice" });
      await store.connect("b1", "bob");
      await store.connect("c1", "carol");
      await store.disconnect("c1");
      const states = await store.userStates(["carol", "alice", "nobody", "bob"]);
      expect(states.map(({ version: _, ...state }) => state)).toEqual([
        { userId: "carol", online: false },
        { userId: "alice", online: true, info: { name: "Alice" } },
        { userId: "nobody", online: false },
        { userId: "bob", online: true },
      ]);
      expect(await store.userStates([])).toEqual([]);
      if (seen.some((t) => t.version !== undefined)) {
        // as of: every change of the user so far is at most the read's version, every later one above it
        for (const state of states) {
          expect(Number.isSafeInteger(state.version), `version of ${state.userId}'s state`).toBe(true);
          for (const t of seen.filter((t) => t.userId === state.userId)) expect(t.version!).toBeLessThanOrEqual(state.version!);
        }
        await store.disconnect("a1");
        await store.connect("c2", "carol");
        const later = seen.slice(-2);
        expect(later.map((t) => t.type)).toEqual(["disconnected", "connected"]);
        for (const t of later) expect(t.version!, `${t.type} of ${t.userId} after the read`).toBeGreaterThan(states.find((s) => s.userId === t.userId)!.version!);
      }
      await expect(store.userStates("alice" as never)).rejects.toBeInstanceOf(InvalidUserIdError);
      await expect(store.userStates(["alice", ""])).rejects.toBeInstanceOf(InvalidUserIdError);
      await expect(store.userStates(Array.from({ length: 1001 }, (_, i) => `u${i}`))).rejects.toBeInstanceOf(InvalidUserIdError);
    });

    it("keeps the info a repeated connect brings, as it keeps the latest info given", async () => {
      const store = await create();
      await store.connect("a1", "alice", { status: "here" });
      expect(await store.connect("a1", "alice", { status: "away" })).toBe(false);
      expect(await store.userInfo("alice")).toEqual({ status: "away" });
      expect(await store.connect("a2", "alice", { status: "back" })).toBe(false);
      expect(await store.userInfo("alice")).toEqual({ status: "back" });
    });

    it("matches a trivially correct model over random call sequences", async () => {
      const connIds = ["c0", "c1", "c2", "c3", "c4", "c5"];
      const userIds = ["u0", "u1", "u2"];
      const rooms = ["r0", "r1"];
      const command = fc.oneof(
        fc.record({ op: fc.constant("connect" as const), conn: fc.constantFrom(...connIds), user: fc.constantFrom(...userIds) }),
        fc.record({ op: fc.constant("disconnect" as const), conn: fc.constantFrom(...connIds) }),
        fc.record({ op: fc.constant("join" as const), conn: fc.constantFrom(...connIds), room: fc.constantFrom(...rooms) }),
        fc.record({ op: fc.constant("leave" as const), conn: fc.constantFrom(...connIds), room: fc.constantFrom(...rooms) }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(command, { maxLength: 40 }), async (commands) => {
          const store = await create();
          // every announcement, checked against the model after each call: none missing, none doubled
          const announced: string[] = [];
          store.onTransition((t) => announced.push(t.type === "left" || t.type === "joined" ? `${t.type}:${t.room}:${t.userId}` : `${t.type}:${t.userId}`));
          try {
            // the model: which user each open connection belongs to, and which rooms it is in
            const model = new Map<string, string>();
            const memberships = new Map<string, Set<string>>();
            const online = (user: string) => [...model.values()].includes(user);
            const inRoom = (user: string, room: string) =>
              [...model].some(([conn, owner]) => owner === user && memberships.get(conn)?.has(room));
            for (const cmd of commands) {
              if (cmd.op === "join" || cmd.op === "leave") {
                const owner = model.get(cmd.conn);
                const member = memberships.get(cmd.conn)?.has(cmd.room) ?? false;
                let expected = false;
                if (owner !== undefined && cmd.op === "join" && !member) {
                  expected = !inRoom(owner, cmd.room);
                  memberships.set(cmd.conn, (memberships.get(cmd.conn) ?? new Set()).add(cmd.room));
                } else if (owner !== undefined && cmd.op === "leave" && member) {
                  memberships.get(cmd.conn)!.delete(cmd.room);
                  expected = !inRoom(owner, cmd.room);
                }
                announced.length = 0;
                expect(await store[cmd.op](cmd.conn, cmd.room)).toBe(expected);
                expect(announced).toEqual(expected ? [`${cmd.op === "join" ? "joined" : "left"}:${cmd.room}:${owner}`] : []);
                for (const room of rooms) {
                  const members = new Set(userIds.filter((user) => inRoom(user, room)));
                  expect(await store.roomUsersCount(room)).toBe(members.size);
                  for (const user of userIds) expect(await store.isUserInRoom(user, room)).toBe(members.has(user));
                }
                continue;
              }
              if (cmd.op === "connect") {
                const owner = model.get(cmd.conn);
                if (owner !== undefined && owner !== cmd.user) {
                  await expect(store.connect(cmd.conn, cmd.user)).rejects.toBeInstanceOf(ConnectionConflictError);
                  continue;
                }
                const expected = owner === undefined && !online(cmd.user);
                model.set(cmd.conn, cmd.user);
                announced.length = 0;
                expect(await store.connect(cmd.conn, cmd.user)).toBe(expected);
                expect(announced).toEqual(expected ? [`connected:${cmd.user}`] : []);
              } else {
                const owner = model.get(cmd.conn);
                const leftRooms = [...(memberships.get(cmd.conn) ?? [])];
                model.delete(cmd.conn);
                memberships.delete(cmd.conn);
                const expectedLeaves = owner === undefined ? [] : leftRooms.filter((room) => !inRoom(owner, room)).map((room) => `left:${room}:${owner}`);
                const expected = owner !== undefined && !online(owner);
                announced.length = 0;
                expect(await store.disconnect(cmd.conn)).toBe(expected);
                // the rooms left come first (in any order), then going offline
                const offline = expected ? [`disconnected:${owner}`] : [];
                expect([...announced.slice(0, expectedLeaves.length).sort(), ...announced.slice(expectedLeaves.length)]).toEqual([...expectedLeaves.sort(), ...offline]);
              }
              const users = new Set(model.values());
              expect(await store.usersCount()).toBe(users.size);
              expect(sorted(await store.usersList())).toEqual(sorted(users));
              for (const user of userIds) expect(await store.isUserConnected(user)).toBe(users.has(user));
            }
          } finally {
            await store.close();
          }
        }),
        { numRuns },
      );
    });
  });
}
