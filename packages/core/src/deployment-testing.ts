import { afterEach, describe, expect, it } from "vitest";
import type { PresenceStore, Transition, UserPresence } from "./store";
import { waitFor as until } from "./waiting";

/** `n` nodes of one deployment: stores that share one backend, as processes of one app do. */
export interface PresenceDeployment {
  /**
   * One store per node, in node order. The same store may stand for several
   * nodes (a one-process store: every "node" is that process).
   */
  stores: PresenceStore[];
  /**
   * Makes node `node` vanish without a goodbye, as SIGKILL or a lost host
   * does: no `close()`, no more traffic either way. Leave it out when the
   * deployment cannot do that; the dead-node cases are then reported skipped.
   */
  kill?(node: number): Promise<void>;
  /** Releases everything the deployment holds. Called after each test, also after a node was closed or killed. */
  close(): Promise<void>;
}

/**
 * The cases a store may declare it does not meet, each with the guarantee it
 * stands for. Every other case is required.
 */
export const DEPLOYMENT_CASES = {
  /** Racing connects (or last disconnects, joins, leaves) of one user on several nodes: exactly one reports the transition. */
  concurrentTransitions: "racing calls of one user on every node: exactly one reports each transition",
  /** A node that closes is cleaned up everywhere and each user it leaves offline is announced once. */
  nodeClose: "a node that closes: its connections go everywhere, and each user or room it leaves is announced once",
  /** A node that dies without a goodbye has its connections removed by the survivors within `deadNodeTimeoutMs`. */
  deadNodeCleanup: "a node killed without a goodbye: the survivors remove its connections within the bound",
  /** ... and the users (and rooms) this leaves empty are announced once, by a survivor. */
  deadNodeTransitions: "a node killed without a goodbye: each user or room it leaves is announced once by a survivor",
} as const;

export type DeploymentCase = keyof typeof DEPLOYMENT_CASES;

export interface DeploymentSuiteOptions {
  /** Makes a fresh deployment of `nodes` nodes, sharing nothing with the deployments of other tests. */
  createDeployment: (nodes: number) => Promise<PresenceDeployment>;
  /**
   * The cases this store does not meet, each with the reason, e.g.
   * `{ concurrentTransitions: "decided by queries: two nodes may both or neither announce" }`.
   * They are reported as skipped with the reason, never dropped silently.
   */
  unmet?: Partial<Record<DeploymentCase, string>>;
  /**
   * How long the survivors may take to remove a killed node's connections
   * and announce its users, in ms (the store's lease or heartbeat timeout, plus slack).
   * @default 10000
   */
  deadNodeTimeoutMs?: number;
  /**
   * How long a cross-node read may lag behind the write it follows, in ms.
   * @default 5000
   */
  propagationMs?: number;
  /** Per-test timeout in ms. @default 30000 */
  timeout?: number;
}

/** Every announcement (`onTransition`) of a deployment, counted per transition, each distinct store heard once. */
class Announcements {
  readonly #counts = new Map<string, number>();
  readonly #unsubscribe = new Map<PresenceStore, () => void>();

  constructor(stores: PresenceStore[]) {
    for (const store of new Set(stores)) {
      this.#unsubscribe.set(store, store.onTransition((t) => this.#add(t)));
    }
  }

  /** Stops hearing a store (a killed node hears nothing and tells nothing). */
  forget(store: PresenceStore): void {
    this.#unsubscribe.get(store)?.();
    this.#unsubscribe.delete(store);
  }

  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** The announcements whose key starts with `prefix`, e.g. `"-"` for every user that went offline. */
  matching(prefix: string): Record<string, number> {
    return Object.fromEntries([...this.#counts].filter(([key]) => key.startsWith(prefix)).sort());
  }

  #add(t: Transition): void {
    const key =
      t.type === "disconnected" ? `-${t.userId}` : t.type === "connected" ? `+${t.userId}` : t.type === "left" ? `-${t.room}:${t.userId}` : t.type === "joined" ? `+${t.room}:${t.userId}` : `~${t.userId}`;
    this.#counts.set(key, this.count(key) + 1);
  }
}

const sorted = (values: Iterable<string>) => [...values].sort();

async function listed(pages: AsyncIterable<UserPresence[]>): Promise<UserPresence[]> {
  const all: UserPresence[] = [];
  for await (const page of pages) all.push(...page);
  return all.sort((a, b) => (a.userId < b.userId ? -1 : 1));
}

/** What every surviving node must see after node 0 went away holding `alice` and one of two `shared` connections. */
async function expectNodeZeroGone(stores: PresenceStore[], what: string, timeoutMs: number): Promise<void> {
  for (const [i, store] of stores.entries()) {
    if (i === 0 || store === stores[0]) continue;
    await until(
      `node ${i} to see node 0's connections gone (${what})`,
      async () => {
        expect(sorted(await store.usersList())).toEqual(["bob", "shared"]);
        expect(await store.usersCount()).toBe(2);
        expect(await store.isUserConnected("alice")).toBe(false);
        expect((await listed(store.roomUsers("lobby"))).map((u) => [u.userId, u.connections])).toEqual([["shared", 1]]);
      },
      timeoutMs,
    );
  }
}

/** Node 0 holds alice (in the lobby) and one connection of `shared` (in the lobby); node 1 holds bob and `shared`'s other (in the lobby). */
async function holdOnNodeZeroAndOne(stores: PresenceStore[]): Promise<void> {
  const [zero, one] = [stores[0]!, stores[1]!];
  await zero.connect("n0-alice", "alice");
  await zero.connect("n0-shared", "shared");
  await zero.join("n0-alice", "lobby");
  await zero.join("n0-shared", "lobby");
  await one.connect("n1-bob", "bob");
  await one.connect("n1-shared", "shared");
  await one.join("n1-shared", "lobby");
}

/**
 * The cross-node cases every distributed store must meet (or declare, with
 * a reason, that it does not): what one node holds, the others see; one
 * transition per user across the deployment; a node that closes or dies is
 * cleaned up and announced once. Run it beside `describePresenceStore`:
 *
 * ```ts
 * describePresenceDeployment("my store", {
 *   createDeployment: async (n) => {
 *     const backend = await startBackend();
 *     const stores = Array.from({ length: n }, () => new MyStore({ backend }));
 *     return { stores, close: async () => { await Promise.allSettled(stores.map((s) => s.close())); await backend.stop(); } };
 *   },
 * });
 * ```
 */
export function describePresenceDeployment(name: string, options: DeploymentSuiteOptions): void {
  const { deadNodeTimeoutMs = 10_000, propagationMs = 5000, timeout = 30_000, unmet = {} } = options;
  for (const key of Object.keys(unmet)) {
    if (!(key in DEPLOYMENT_CASES)) {
      throw new TypeError(`describePresenceDeployment: unknown case ${JSON.stringify(key)} in unmet (known: ${Object.keys(DEPLOYMENT_CASES).join(", ")})`);
    }
  }

  describe(`PresenceStore deployment: ${name}`, { timeout }, () => {
    const open: PresenceDeployment[] = [];
    const deploy = async (nodes: number) => {
      const deployment = await options.createDeployment(nodes);
      open.push(deployment);
      if (deployment.stores.length !== nodes) throw new Error(`createDeployment(${nodes}) gave ${deployment.stores.length} stores`);
      return deployment;
    };
    const eventually = (what: string, check: () => unknown) => until(what, check, propagationMs);

    afterEach(async () => {
      await Promise.allSettled(open.splice(0).map((deployment) => deployment.close()));
    });

    /** A case that may be declared unmet: then reported skipped, with the reason in its title. */
    const optional = (which: DeploymentCase, fn: (skip: (note: string) => never) => Promise<void>) => {
      const title = DEPLOYMENT_CASES[which];
      const reason = unmet[which];
      if (reason !== undefined) return it.skip(`${title} [not met: ${reason}]`, () => {});
      return it(title, (context) => fn((note) => context.skip(note)));
    };

    it("node B sees what node A holds: users, connections, rooms and info", async () => {
      const { stores } = await deploy(2);
      const [a, b] = [stores[0]!, stores[1]!];
      expect(await a.connect("a1", "alice", { name: "Alice" })).toBe(true);
      expect(await a.connect("a2", "alice")).toBe(false);
      expect(await a.join("a1", "lobby")).toBe(true);
      await eventually("node B to see alice", async () => {
        expect(await b.isUserConnected("alice")).toBe(true);
        expect(await b.usersList()).toEqual(["alice"]);
        expect(await b.usersCount()).toBe(1);
        expect(await listed(b.users())).toEqual([{ userId: "alice", connections: 2, info: { name: "Alice" } }]);
        expect(await b.userInfo("alice")).toEqual({ name: "Alice" });
        expect(await b.isUserInRoom("alice", "lobby")).toBe(true);
        expect(await b.roomUsersCount("lobby")).toBe(1);
        expect(await listed(b.roomUsers("lobby"))).toEqual([{ userId: "alice", connections: 1, info: { name: "Alice" } }]);
      });
      expect(await b.updateInfo("alice", { name: "Alice", status: "away" })).toBe(true);
      await eventually("node A to see the info node B set", async () => expect(await a.userInfo("alice")).toEqual({ name: "Alice", status: "away" }));

      expect(await a.disconnect("a1")).toBe(false);
      expect(await a.disconnect("a2")).toBe(true);
      await eventually("node B to see alice gone", async () => {
        expect(await b.isUserConnected("alice")).toBe(false);
        expect(await b.usersCount()).toBe(0);
        expect(await b.roomUsersCount("lobby")).toBe(0);
        expect(await b.userInfo("alice")).toBeUndefined();
      });
    });

    it("a user on two nodes goes online once, enters a room once, and leaves each once with the last connection", async () => {
      const { stores } = await deploy(2);
      const [a, b] = [stores[0]!, stores[1]!];
      expect(await a.connect("a1", "alice")).toBe(true);
      expect(await b.connect("b1", "alice")).toBe(false);
      expect(await a.join("a1", "lobby")).toBe(true);
      expect(await b.join("b1", "lobby")).toBe(false);
      expect(await a.leave("a1", "lobby")).toBe(false);
      expect(await b.leave("b1", "lobby")).toBe(true);
      expect(await b.join("b1", "lobby")).toBe(true);
      // the last connection goes from the other node than the first came to
      expect(await a.disconnect("a1")).toBe(false);
      await eventually("both nodes to see alice online in her tab on node B", async () => {
        for (const store of [a, b]) {
          expect(await store.isUserConnected("alice")).toBe(true);
          expect(await store.isUserInRoom("alice", "lobby")).toBe(true);
        }
      });
      const seen = new Announcements(stores);
      expect(await b.disconnect("b1")).toBe(true);
      await eventually("the lobby leave announced once", () => expect(seen.matching("-lobby:")).toEqual({ "-lobby:alice": 1 }));
      await eventually("both nodes to see alice offline", async () => {
        for (const store of [a, b]) expect(await store.isUserConnected("alice")).toBe(false);
      });
    });

    optional("concurrentTransitions", async () => {
      const { stores } = await deploy(3);
      const users = Array.from({ length: 10 }, (_, i) => `user-${i}`);
      const conn = (node: number, user: string) => `n${node}-${user}`;
      const each = <T>(fn: (store: PresenceStore, node: number, user: string) => Promise<T>) =>
        Promise.all(users.map((user) => Promise.all(stores.map((store, node) => fn(store, node, user)))));
      const once = (results: boolean[][], what: string) => {
        for (const [i, perNode] of results.entries()) expect(perNode.filter(Boolean), `${what} of ${users[i]}`).toHaveLength(1);
      };
      const seen = new Announcements(stores);
      once(await each((store, node, user) => store.connect(conn(node, user), user)), "connects reporting online");
      once(await each((store, node, user) => store.join(conn(node, user), "lobby")), "joins reporting the room entered");
      once(await each((store, node, user) => store.leave(conn(node, user), "lobby")), "leaves reporting the room left");
      once(await each((store, node, user) => store.disconnect(conn(node, user))), "disconnects reporting offline");
      for (const store of stores) expect(await store.usersCount()).toBe(0);
      // and every transition heard exactly once across the deployment
      const each1 = (prefix: string) => Object.fromEntries(users.map((user) => [`${prefix}${user}`, 1]).sort());
      await eventually("every transition announced", () => expect(seen.matching("+user")).toEqual(each1("+")));
      expect(seen.matching("-user")).toEqual(each1("-"));
      expect(seen.matching("+lobby:")).toEqual(each1("+lobby:"));
      expect(seen.matching("-lobby:")).toEqual(each1("-lobby:"));
    });

    it("every node gives the same counts, lists and rooms", async () => {
      const { stores } = await deploy(3);
      const expected = new Map<string, number>();
      for (let i = 0; i < 30; i++) {
        const user = `user-${i % 20}`;
        const node = i % stores.length;
        await stores[node]!.connect(`c${i}`, user);
        if (i % 3 === 0) await stores[node]!.join(`c${i}`, "lobby");
        expected.set(user, (expected.get(user) ?? 0) + 1);
      }
      const lobby = sorted(new Set(Array.from({ length: 10 }, (_, k) => `user-${(k * 3) % 20}`)));
      for (const [node, store] of stores.entries()) {
        await eventually(`node ${node} to count every node's users`, async () => {
          expect(await store.usersCount()).toBe(expected.size);
          expect(sorted(await store.usersList())).toEqual(sorted(expected.keys()));
          expect(Object.fromEntries((await listed(store.users({ pageSize: 7 }))).map((u) => [u.userId, u.connections]))).toEqual(
            Object.fromEntries([...expected].sort()),
          );
          expect(await store.roomUsersCount("lobby")).toBe(lobby.length);
          expect((await listed(store.roomUsers("lobby"))).map((u) => u.userId)).toEqual(lobby);
          expect(await store.isUserConnected("user-19")).toBe(true);
          expect(await store.isUserConnected("user-20")).toBe(false);
        });
      }
    });

    optional("nodeClose", async () => {
      const { stores } = await deploy(3);
      await holdOnNodeZeroAndOne(stores);
      const seen = new Announcements(stores);
      await stores[0]!.close();
      await expectNodeZeroGone(stores, "after its close()", propagationMs);
      await eventually("alice's leaves announced", () => expect(seen.count("-alice") + seen.count("-lobby:alice")).toBeGreaterThanOrEqual(2));
      await new Promise((resolve) => setTimeout(resolve, 300)); // a second announcement would come now
      expect(seen.matching("-")).toEqual({ "-alice": 1, "-lobby:alice": 1 });
      expect(seen.matching("+")).toEqual({});
      // the survivors go on as before
      expect(await stores[2]!.connect("n2-carol", "carol")).toBe(true);
      await eventually("node 1 to see carol", async () => expect(await stores[1]!.isUserConnected("carol")).toBe(true));
    });

    /** Node 0 killed while holding alice; skips the case when the deployment cannot kill. */
    const killNodeZero = async (skip: (note: string) => never) => {
      const deployment = await deploy(3);
      const { kill } = deployment;
      if (!kill) return skip("not run: the deployment gives no kill(i), so a node cannot die without a goodbye");
      await holdOnNodeZeroAndOne(deployment.stores);
      const seen = new Announcements(deployment.stores);
      seen.forget(deployment.stores[0]!);
      await kill.call(deployment, 0);
      return { ...deployment, seen };
    };

    optional("deadNodeCleanup", async (skip) => {
      const { stores } = await killNodeZero(skip);
      await expectNodeZeroGone(stores, "after it was killed", deadNodeTimeoutMs);
      expect(await stores[2]!.connect("n2-carol", "carol")).toBe(true);
    });

    optional("deadNodeTransitions", async (skip) => {
      const { seen } = await killNodeZero(skip);
      await until("a survivor to announce alice's leaves", () => expect(seen.count("-alice") + seen.count("-lobby:alice")).toBeGreaterThanOrEqual(2), deadNodeTimeoutMs);
      await new Promise((resolve) => setTimeout(resolve, 500)); // a second announcement would come now
      expect(seen.matching("-")).toEqual({ "-alice": 1, "-lobby:alice": 1 });
    });
  });
}
