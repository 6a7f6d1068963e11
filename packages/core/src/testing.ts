import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectionConflictError, InvalidUserIdError, StoreClosedError } from "./errors";
import type { PresenceStore, Transition } from "./store";

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

    it("matches a trivially correct model over random call sequences", async () => {
      const connIds = ["c0", "c1", "c2", "c3", "c4", "c5"];
      const userIds = ["u0", "u1", "u2"];
      const command = fc.oneof(
        fc.record({ op: fc.constant("connect" as const), conn: fc.constantFrom(...connIds), user: fc.constantFrom(...userIds) }),
        fc.record({ op: fc.constant("disconnect" as const), conn: fc.constantFrom(...connIds) }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(command, { maxLength: 40 }), async (commands) => {
          const store = await create();
          try {
            // the model: which user each open connection belongs to
            const model = new Map<string, string>();
            const online = (user: string) => [...model.values()].includes(user);
            for (const cmd of commands) {
              if (cmd.op === "connect") {
                const owner = model.get(cmd.conn);
                if (owner !== undefined && owner !== cmd.user) {
                  await expect(store.connect(cmd.conn, cmd.user)).rejects.toBeInstanceOf(ConnectionConflictError);
                  continue;
                }
                const expected = owner === undefined && !online(cmd.user);
                model.set(cmd.conn, cmd.user);
                expect(await store.connect(cmd.conn, cmd.user)).toBe(expected);
              } else {
                const owner = model.get(cmd.conn);
                model.delete(cmd.conn);
                const expected = owner !== undefined && !online(owner);
                expect(await store.disconnect(cmd.conn)).toBe(expected);
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
