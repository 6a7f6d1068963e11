import type { PresenceStore } from "@presence/core";
import type { PresenceDeployment } from "@presence/core/testing";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { connectClient, eventually, recordEvents, sleep, startServer, type TestServer } from "./testing-harness";

export { connectClient, eventually, recordEvents, sleep, startServer, type TestServer } from "./testing-harness";

export interface BindingScenarioOptions {
  /**
   * Makes `count` stores of one fresh deployment: what one process counts,
   * the others see (for the memory store: the same store, `count` times).
   * Give a `PresenceDeployment` (`{ stores, close }`, as for
   * `describePresenceDeployment`) when the deployment holds more than its
   * stores (servers, processes): it is closed after each scenario.
   */
  createStores: (count: number) => Promise<PresenceStore[] | PresenceDeployment>;
}

/** Wraps a store so that its calls can be slowed down or made to fail. */
export function wrapStore(
  store: PresenceStore,
  hooks: { beforeConnect?: () => Promise<void> | void; beforeDisconnect?: () => Promise<void> | void },
): PresenceStore {
  return {
    connect: async (connectionId, userId, info) => {
      await hooks.beforeConnect?.();
      return store.connect(connectionId, userId, info);
    },
    disconnect: async (connectionId) => {
      await hooks.beforeDisconnect?.();
      return store.disconnect(connectionId);
    },
    updateInfo: (userId, info) => store.updateInfo(userId, info),
    userInfo: (userId) => store.userInfo(userId),
    join: (connectionId, room) => store.join(connectionId, room),
    leave: (connectionId, room) => store.leave(connectionId, room),
    isUserInRoom: (userId, room) => store.isUserInRoom(userId, room),
    roomUsersCount: (room) => store.roomUsersCount(room),
    roomUsers: (room, options) => store.roomUsers(room, options),
    isUserConnected: (userId) => store.isUserConnected(userId),
    usersCount: () => store.usersCount(),
    usersList: () => store.usersList(),
    users: (options) => store.users(options),
    userStates: (userIds) => store.userStates(userIds),
    onTransition: (listener) => store.onTransition(listener),
    onError: (listener) => store.onError(listener),
    close: () => store.close(),
  };
}

const userIds = (list: string[]) => [...list].sort();

/**
 * The binding's scenarios over real Socket.IO servers and clients, run
 * against any store (memory, cluster-query, cluster, Redis): multi-tab
 * counting, both transports, a disconnect during a connect, refused
 * identities, retries, the leave grace (also across two nodes), rooms, info
 * and close. Needs vitest and socket.io-client (optional peer dependencies).
 *
 * ```ts
 * import { describeBindingScenarios } from "@presence/socketio/testing";
 *
 * describeBindingScenarios("my store", { createStores: async (n) => myDeployment(n).stores });
 * ```
 */
export function describeBindingScenarios(name: string, options: BindingScenarioOptions): void {
  describe(`binding scenarios: ${name}`, () => {
    const servers: TestServer[] = [];
    const clients: ClientSocket[] = [];

    const server = async (...args: Parameters<typeof startServer>) => {
      const s = await startServer(...args);
      servers.push(s);
      return s;
    };
    const client = async (...args: Parameters<typeof connectClient>) => {
      const c = await connectClient(...args);
      clients.push(c);
      return c;
    };
    const deployments: PresenceDeployment[] = [];
    const createStores = async (count: number) => {
      const made = await options.createStores(count);
      if (Array.isArray(made)) return made;
      deployments.push(made);
      return made.stores;
    };
    const oneStore = async () => (await createStores(1))[0]!;

    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await Promise.allSettled(servers.splice(0).map((s) => s.close()));
      await Promise.allSettled(deployments.splice(0).map((d) => d.close()));
    });

    it("counts a user once across many tabs, and announces each transition once", async () => {
      const s = await server({ store: await oneStore() });
      const observer = await client(s.port, { userId: "observer" });
      const seen = recordEvents(observer);
      const serverSide: string[] = [];
      s.presence.on("connected", (u) => serverSide.push(`+${u}`));
      s.presence.on("disconnected", (u) => serverSide.push(`-${u}`));

      const aliceTabs = await Promise.all([1, 2, 3].map(() => client(s.port, { userId: "alice" })));
      await client(s.port, { userId: "bob" });
      await eventually(async () => expect(await s.presence.usersCount()).toBe(3));
      expect(userIds(await s.presence.usersList())).toEqual(["alice", "bob", "observer"]);

      aliceTabs[0]!.close();
      aliceTabs[1]!.close();
      await sleep(100);
      expect(await s.presence.isUserConnected("alice")).toBe(true);
      aliceTabs[2]!.close();
      await eventually(async () => expect(await s.presence.isUserConnected("alice")).toBe(false));
      await eventually(() => expect(seen).toContain("-alice"));

      expect(seen.filter((e) => e === "+alice")).toHaveLength(1);
      expect(seen.filter((e) => e === "-alice")).toHaveLength(1);
      expect(seen.filter((e) => e === "+bob")).toHaveLength(1);
      expect(serverSide.filter((e) => e.endsWith("alice"))).toEqual(["+alice", "-alice"]);
    });

    it("counts many users over both transports", async () => {
      const s = await server({ store: await oneStore() });
      const ids = Array.from({ length: 40 }, (_, i) => `user-${i}`);
      await Promise.all(
        ids.map((userId, i) => client(s.port, { userId }, { transports: i % 2 ? ["polling"] : ["websocket"] })),
      );
      await eventually(async () => expect(await s.presence.usersCount()).toBe(40));
      expect(userIds(await s.presence.usersList())).toEqual(userIds(ids));
      const polling = clients.find((c) => c.io.engine.transport.name === "polling");
      expect(polling).toBeDefined();
      polling!.close();
      await eventually(async () => expect(await s.presence.usersCount()).toBe(39));
    });

    it("counts down a socket that disconnects while its connect is in flight", async () => {
      const store = await oneStore();
      let releaseConnect!: () => void;
      const connectGate = new Promise<void>((resolve) => (releaseConnect = resolve));
      const s = await server({ store: wrapStore(store, { beforeConnect: () => connectGate }) });
      const events: string[] = [];
      s.presence.on("connected", (u) => events.push(`+${u}`));
      s.presence.on("disconnected", (u) => events.push(`-${u}`));

      const tab = await client(s.port, { userId: "alice" });
      tab.close();
      await sleep(100); // the server has seen the disconnect; the connect is still held
      releaseConnect();
      await eventually(() => expect(events).toEqual(["+alice", "-alice"]));
      expect(await store.isUserConnected("alice")).toBe(false);
      expect(await store.usersCount()).toBe(0);
    });

    it("refuses sockets whose identify fails, with a reason, and counts nothing", async () => {
      const s = await server({
        store: await oneStore(),
        identify: (socket) => {
          const { mode, userId } = socket.handshake.auth;
          if (mode === "throw") throw new Error("token expired");
          if (mode === "async-throw") return Promise.reject(new Error("session lookup failed"));
          if (mode === "nothing") return undefined;
          return userId;
        },
      });
      const refusals = [
        [{ mode: "throw" }, "identify-failed"],
        [{ mode: "async-throw" }, "identify-failed"],
        [{ mode: "nothing" }, "no-user-id"],
        [{ userId: "" }, "invalid-user-id"],
        [{ userId: 42 }, "invalid-user-id"],
        [{ userId: "x".repeat(257) }, "invalid-user-id"],
        [{ userId: "x".repeat(100 * 1024) }, "invalid-user-id"],
      ] as const;
      for (const [auth, reason] of refusals) {
        const error = await connectClient(s.port, auth, { transports: ["polling"] }).then(
          () => undefined,
          (e: Error & { data?: { reason?: string } }) => e,
        );
        expect(error?.message).toBe("unauthorized");
        expect(error?.data?.reason).toBe(reason);
      }
      // 1 MB is over Socket.IO's maxHttpBufferSize: the transport is cut before identify runs
      await expect(connectClient(s.port, { userId: "x".repeat(1024 * 1024) })).rejects.toThrow(/transport closed/);
      expect(await s.presence.usersCount()).toBe(0);
      // and the server still serves honest users
      await client(s.port, { userId: "alice" });
      await eventually(async () => expect(await s.presence.usersList()).toEqual(["alice"]));
    });

    it("retries a store call that fails for a while", async () => {
      let failures = 2;
      const s = await server({
        store: wrapStore(await oneStore(), {
          beforeConnect: () => {
            if (failures-- > 0) throw new Error("store hiccup");
          },
        }),
        retryDelayMs: 10,
      });
      const errors: Error[] = [];
      s.presence.on("error", (e) => errors.push(e));
      await client(s.port, { userId: "alice" });
      await eventually(async () => expect(await s.presence.isUserConnected("alice")).toBe(true));
      expect(errors).toEqual([]);
    });

    it("surfaces a store that keeps failing as an error event, without crashing", async () => {
      const s = await server({
        store: wrapStore(await oneStore(), {
          beforeConnect: () => Promise.reject(new Error("store down")),
          beforeDisconnect: () => Promise.reject(new Error("store down")),
        }),
        retryDelayMs: 5,
      });
      const errors: Error[] = [];
      s.presence.on("error", (e) => errors.push(e));
      const tab = await client(s.port, { userId: "alice" });
      await eventually(() => expect(errors.map((e) => e.message)).toEqual(["store down"]));
      tab.close();
      await eventually(() => expect(errors).toHaveLength(2));
      // with no error listener, failures are only logged
      s.presence.removeAllListeners("error");
      await client(s.port, { userId: "bob" });
      await sleep(100);
    });

    it("keeps a user online through a reconnect inside the leave grace", async () => {
      const s = await server({ store: await oneStore(), leaveDelayMs: 400 });
      const observer = await client(s.port, { userId: "observer" });
      const seen = recordEvents(observer);
      const tab = await client(s.port, { userId: "alice" });
      await eventually(() => expect(seen).toEqual(["+alice"]));
      tab.close();
      await sleep(100);
      await client(s.port, { userId: "alice" }, { transports: ["polling"] });
      await sleep(600); // past the grace of the first tab
      expect(seen).toEqual(["+alice"]);
      expect(await s.presence.isUserConnected("alice")).toBe(true);
    });

    it("announces the leave once the grace runs out", async () => {
      const s = await server({ store: await oneStore(), leaveDelayMs: 200 });
      const observer = await client(s.port, { userId: "observer" });
      const seen = recordEvents(observer);
      const tab = await client(s.port, { userId: "alice" });
      await eventually(() => expect(seen).toEqual(["+alice"]));
      tab.close();
      await sleep(100);
      expect(await s.presence.isUserConnected("alice")).toBe(true);
      await eventually(() => expect(seen).toEqual(["+alice", "-alice"]));
      expect(await s.presence.isUserConnected("alice")).toBe(false);
    });

    it("keeps a user online through a reconnect to another node inside the grace", async () => {
      const [storeA, storeB] = await createStores(2);
      const a = await server({ store: storeA!, leaveDelayMs: 400 });
      const b = await server({ store: storeB!, leaveDelayMs: 400 });
      const transitions: string[] = [];
      // the server-side events fire where a store announces: once per store (two nodes may share one in-process store)
      for (const s of storeA === storeB ? [a] : [a, b]) {
        s.presence.on("connected", (u) => transitions.push(`+${u}`));
        s.presence.on("disconnected", (u) => transitions.push(`-${u}`));
      }
      const tab = await client(a.port, { userId: "alice" });
      await eventually(() => expect(transitions).toEqual(["+alice"]));
      tab.close();
      await sleep(50);
      await client(b.port, { userId: "alice" });
      await sleep(700);
      expect(transitions).toEqual(["+alice"]);
      expect(await b.presence.isUserConnected("alice")).toBe(true);
      expect(await a.presence.isUserConnected("alice")).toBe(true);
    });

    /** A server whose clients ask to join and leave rooms; presence tracks "room:" rooms. */
    async function roomServer(extra: Partial<Parameters<typeof startServer>[0]> = {}) {
      const s = await server({
        store: await oneStore(),
        rooms: "room:",
        identify: (socket) => ({ id: socket.handshake.auth.userId, info: socket.handshake.auth.info }),
        ...extra,
      });
      s.io.on("connection", (socket) => {
        socket.on("join", async (room: string, ack: () => void) => {
          await socket.join(room);
          ack();
        });
        socket.on("leave", async (room: string, ack: () => void) => {
          await socket.leave(room);
          ack();
        });
      });
      return s;
    }
    const roomEvents = (socket: ClientSocket) => {
      const events: string[] = [];
      socket.on("user has joined", (room: string, userId: string) => events.push(`+${room}:${userId}`));
      socket.on("user has left", (room: string, userId: string) => events.push(`-${room}:${userId}`));
      return events;
    };

    it("tracks the rooms the app chooses and tells their members who joins and leaves", async () => {
      const s = await roomServer();
      const bob = await client(s.port, { userId: "bob" });
      const seen = roomEvents(bob);
      await bob.emitWithAck("join", "room:a");
      // the store follows the join after its ack; two users' changes have no order between them (a RedisStore's buckets decide them apart)
      await eventually(() => expect(seen).toEqual(["+room:a:bob"]));
      const [tab1, tab2] = [await client(s.port, { userId: "alice" }), await client(s.port, { userId: "alice" })];
      await tab1!.emitWithAck("join", "room:a");
      await tab2!.emitWithAck("join", "room:a");
      await tab1!.emitWithAck("join", "private"); // not tracked
      await eventually(() => expect(seen).toEqual(["+room:a:bob", "+room:a:alice"]));
      expect(await s.presence.roomUsersCount("room:a")).toBe(2);
      expect(await s.presence.isUserInRoom("alice", "room:a")).toBe(true);
      expect(await s.presence.isUserInRoom("alice", "private")).toBe(false);

      await tab1!.emitWithAck("leave", "room:a");
      await sleep(100);
      expect(seen).toEqual(["+room:a:bob", "+room:a:alice"]); // alice is still there in her other tab
      tab2!.close(); // leaving by disconnecting
      await eventually(() => expect(seen).toEqual(["+room:a:bob", "+room:a:alice", "-room:a:alice"]));
      const members: string[] = [];
      for await (const page of s.presence.roomUsers("room:a")) members.push(...page.map((u) => u.userId));
      expect(members).toEqual(["bob"]);
      expect(await s.presence.isUserConnected("alice")).toBe(true); // tab1 is still open
    });

    it("sends a user's info with the connect event, lists it, and announces updates", async () => {
      const s = await roomServer();
      const observer = await client(s.port, { userId: "observer" });
      const joined: unknown[][] = [];
      const updated: unknown[][] = [];
      // (userId, info, version): the version is the decider's, growing
      const versions: number[] = [];
      observer.on("user has connected", (...args: unknown[]) => args[0] !== "observer" && joined.push(args.slice(0, 2)) && versions.push(args[2] as number));
      observer.on("user has updated", (...args: unknown[]) => updated.push(args.slice(0, 2)) && versions.push(args[2] as number));
      const alice = await client(s.port, { userId: "alice", info: { name: "Alice", status: "here" } });
      await alice.emitWithAck("join", "room:a");
      await eventually(() => expect(joined).toEqual([["alice", { name: "Alice", status: "here" }]]));
      expect(await s.presence.userInfo("alice")).toEqual({ name: "Alice", status: "here" });
      // the room join is followed from the adapter's event, after the join's ack: the store may take it a moment later
      await eventually(async () => {
        const listed: unknown[] = [];
        for await (const page of s.presence.roomUsers("room:a")) listed.push(...page);
        expect(listed).toEqual([{ userId: "alice", connections: 1, info: { name: "Alice", status: "here" } }]);
      });

      expect(await s.presence.updateInfo("alice", { name: "Alice", status: "away" })).toBe(true);
      await eventually(() => expect(updated).toEqual([["alice", { name: "Alice", status: "away" }]]));
      if (versions.some((version) => version !== undefined)) expect(versions[1]!).toBeGreaterThan(versions[0]!);
      expect(await s.presence.updateInfo("nobody", { name: "?" })).toBe(false);
      await expect(s.presence.updateInfo("alice", { big: "x".repeat(5000) })).rejects.toMatchObject({ code: "INVALID_USER_INFO" });

      const refused = await connectClient(s.port, { userId: "mallory", info: { big: "x".repeat(5000) } }).catch((e) => e);
      expect(refused.data?.reason).toBe("invalid-user-info");
      alice.close();
      await eventually(async () => expect(await s.presence.userInfo("alice")).toBeUndefined());
    });

    it("keeps a user in their rooms through a reconnect inside the leave grace", async () => {
      const s = await roomServer({ leaveDelayMs: 400 });
      const bob = await client(s.port, { userId: "bob" });
      const events = roomEvents(bob);
      const seen = {
        get value() {
          return events.filter((e) => e.endsWith(":alice")); // bob's own join may arrive late
        },
      };
      await bob.emitWithAck("join", "room:a");
      const tab = await client(s.port, { userId: "alice" });
      await tab.emitWithAck("join", "room:a");
      await eventually(() => expect(seen.value).toEqual(["+room:a:alice"]));
      tab.close();
      await sleep(100);
      const again = await client(s.port, { userId: "alice" });
      await again.emitWithAck("join", "room:a");
      await sleep(600);
      expect(seen.value).toEqual(["+room:a:alice"]);
      again.close();
      await eventually(() => expect(seen.value).toEqual(["+room:a:alice", "-room:a:alice"]), 3000);
    });

    it("close() removes this server's connections and announces the leaves", async () => {
      const s = await server({ store: await oneStore(), leaveDelayMs: 10_000 });
      const serverSide: string[] = [];
      s.presence.on("disconnected", (u) => serverSide.push(u));
      await client(s.port, { userId: "alice" });
      const bob = await client(s.port, { userId: "bob" });
      await eventually(async () => expect(await s.presence.usersCount()).toBe(2));
      bob.close(); // waiting out a long grace: close() applies it at once
      await sleep(50);
      await s.presence.close();
      expect(serverSide.sort()).toEqual(["alice", "bob"]);
      await expect(s.presence.usersCount()).rejects.toMatchObject({ code: "STORE_CLOSED" });
    });
  });
}
