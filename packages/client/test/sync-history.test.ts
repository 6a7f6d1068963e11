import {
  LocalPresence,
  LocalStore,
  StoreBase,
  VersionCounter,
  versionSeed,
  type PresenceStore,
  type Transition,
  type UserInfo,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";
import fc from "fast-check";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { createPresenceClient, type PresenceClient } from "../src";
import { connectClient, createBus, sleep, sorted, startNode, waitFor, type TestNode } from "./harness";

/**
 * The sync layer's randomized history test, in the shape of the Redis one:
 * three nodes behind one decider (or two, as a RedisStore with buckets has),
 * random joins, leaves, reconnects, room
 * changes and scope changes, announcements that reach the binding late and
 * out of order across nodes, nodes whose inbound messages stall, and relayed
 * transitions dropped on the way. At quiescence every view (all users, a
 * room, a user list, the count) and every observer's last per-user event
 * equals the test's own record of which tabs are open.
 *
 * `SYNC_HISTORY_SEEDS=200` runs 200 seeds; CI runs 3. Each seed prints what it did.
 */
const SEEDS = Number(process.env.SYNC_HISTORY_SEEDS ?? 3);
const FIRST_SEED = Number(process.env.SYNC_HISTORY_SEED ?? 1);
const USERS = ["u0", "u1", "u2", "u3", "u4", "u5"];
const FRIENDS = ["u1", "u2", "u4"];
const ROOM = "room-a";

/**
 * The deciders (LocalPresences) shared by every node's store: one, or two
 * whose version counters are eleven days of microseconds apart, each user
 * always decided by the same one. Each node's announcements reach its
 * binding after a random delay.
 */
class Backend {
  readonly presences: LocalPresence[];
  delay: () => number = () => 0;

  constructor(deciders: number) {
    this.presences = Array.from({ length: deciders }, (_, i) => new LocalPresence({ versions: new VersionCounter(versionSeed() + i * 1e12) }));
  }

  deciderOf(userId: string): number {
    return userId.charCodeAt(userId.length - 1) % this.presences.length;
  }
}

class DelayedStore extends LocalStore {
  readonly #backend: Backend;

  constructor(backend: Backend, presence: LocalPresence) {
    super(presence);
    this.#backend = backend;
  }

  holds(connectionId: string): boolean {
    return this.local.userOf(connectionId) !== undefined;
  }

  /** Announces after a delay (a slow node, a late reply), then answers: still before the call resolves, as the contract says. */
  protected override announce(transitions: Transition[], type?: Transition["type"]): boolean {
    const made = type !== undefined && transitions.some((transition) => transition.type === type);
    if (transitions.length === 0) return made;
    const wait = this.#backend.delay();
    this.pending = this.pending.then(() => sleep(wait)).then(() => void super.announce(transitions));
    return made;
  }

  pending: Promise<void> = Promise.resolve();

  override async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    const made = await super.connect(connectionId, userId, info);
    await this.pending;
    return made;
  }

  override async disconnect(connectionId: string): Promise<boolean> {
    const made = await super.disconnect(connectionId);
    await this.pending;
    return made;
  }

  override async join(connectionId: string, room: string): Promise<boolean> {
    const made = await super.join(connectionId, room);
    await this.pending;
    return made;
  }

  override async leave(connectionId: string, room: string): Promise<boolean> {
    const made = await super.leave(connectionId, room);
    await this.pending;
    return made;
  }

  /** The nodes share the decider: a node closing takes nothing from it here (its tabs are closed first). */
  protected override async shutdown(): Promise<void> {}
}

/** A node's store over two deciders, as a RedisStore routes over its buckets: by user, and by the decider holding a connection. */
class SplitStore extends StoreBase implements PresenceStore {
  readonly #parts: DelayedStore[];
  readonly #backend: Backend;

  constructor(backend: Backend) {
    super();
    this.#backend = backend;
    this.#parts = backend.presences.map((presence) => new DelayedStore(backend, presence));
    for (const part of this.#parts) part.onTransition((transition) => this.events.announce(transition));
  }

  get limits() {
    return this.#parts[0]!.limits;
  }

  #of(userId: string): DelayedStore {
    return this.#parts[this.#backend.deciderOf(userId)]!;
  }

  #holding(connectionId: string): DelayedStore {
    return this.#parts.find((part) => part.holds(connectionId)) ?? this.#parts[0]!;
  }

  async #sum(count: (part: DelayedStore) => Promise<number>): Promise<number> {
    return (await Promise.all(this.#parts.map(count))).reduce((a, b) => a + b, 0);
  }

  async *#concat(pages: (part: DelayedStore) => AsyncIterable<UserPresence[]>): AsyncIterable<UserPresence[]> {
    for (const part of this.#parts) yield* pages(part);
  }

  connect = (connectionId: string, userId: string, info?: UserInfo) => this.#of(userId).connect(connectionId, userId, info);
  disconnect = (connectionId: string) => this.#holding(connectionId).disconnect(connectionId);
  updateInfo = (userId: string, info: UserInfo) => this.#of(userId).updateInfo(userId, info);
  userInfo = (userId: string) => this.#of(userId).userInfo(userId);
  join = (connectionId: string, room: string) => this.#holding(connectionId).join(connectionId, room);
  leave = (connectionId: string, room: string) => this.#holding(connectionId).leave(connectionId, room);
  isUserInRoom = (userId: string, room: string) => this.#of(userId).isUserInRoom(userId, room);
  isUserConnected = (userId: string) => this.#of(userId).isUserConnected(userId);
  roomUsersCount = (room: string) => this.#sum((part) => part.roomUsersCount(room));
  usersCount = () => this.#sum((part) => part.usersCount());
  roomUsers = (room: string, options?: UsersPageOptions) => this.#concat((part) => part.roomUsers(room, options));
  users = (options?: UsersPageOptions) => this.#concat((part) => part.users(options));
  usersList = async () => (await Promise.all(this.#parts.map((part) => part.usersList()))).flat();
  userStates = async (userIds: readonly string[]) => (await Promise.all(userIds.map((userId) => this.#of(userId).userStates([userId])))).flat();

  protected override async shutdown(): Promise<void> {}
}

const SERVER_SIDE_EMIT = 9; // socket.io-adapter's MessageType.SERVER_SIDE_EMIT: the relayed transitions

type Op =
  | { op: "open"; user: number; node: number }
  | { op: "close"; tab: number }
  | { op: "reconnect"; tab: number; node: number }
  | { op: "join"; tab: number }
  | { op: "leave"; tab: number }
  | { op: "stall"; node: number; ms: number }
  | { op: "resubscribe"; viewer: number };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("open" as const), user: fc.nat(USERS.length - 1), node: fc.nat(2) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("close" as const), tab: fc.nat(40) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("reconnect" as const), tab: fc.nat(40), node: fc.nat(2) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("join" as const), tab: fc.nat(40) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("leave" as const), tab: fc.nat(40) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("stall" as const), node: fc.nat(2), ms: fc.integer({ min: 50, max: 400 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("resubscribe" as const), viewer: fc.nat(7) }) },
);

interface Tab {
  user: string;
  socket: ClientSocket;
  inRoom: boolean;
  open: boolean;
}

for (const deciders of [1, 2]) describe(`sync history, ${deciders} decider(s): views and event streams end at the truth`, { timeout: 120_000 }, () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) {
    it(`seed ${seed}`, async () => {
      const [ops] = fc.sample(fc.array(opArbitrary, { minLength: 40, maxLength: 80 }), { seed, numRuns: 1 });
      let random = seed * 7919;
      const next = () => ((random = (random * 48271) % 2147483647) / 2147483647);
      const backend = new Backend(deciders);
      backend.delay = () => (next() < 0.3 ? Math.floor(next() * 60) : 0);
      const bus = createBus();
      let dropped = 0;
      bus.drop = (message) => message.type === SERVER_SIDE_EMIT && next() < 0.05 && ++dropped > 0;
      const nodes: TestNode[] = [];
      for (let i = 0; i < 3; i++) {
        const store = deciders === 1 ? new DelayedStore(backend, backend.presences[0]!) : new SplitStore(backend);
        nodes.push(await startNode({ store, sync: { tickMs: 50, nodeHeartbeatMs: 300 } }, { adapter: bus.adapter as never }));
      }
      cleanup.push(async () => {
        for (const node of nodes) await node.close();
      });
      const join = (socket: ClientSocket) => socket.timeout(5000).emitWithAck("join", ROOM);
      for (const node of nodes) {
        node.io.on("connection", (socket) => {
          socket.on("join", (room: string, ack: () => void) => {
            void socket.join(room);
            ack();
          });
          socket.on("leave", (room: string, ack: () => void) => {
            void socket.leave(room);
            ack();
          });
        });
      }

      // viewers and observers, two per node: each holds four views and records the per-user events
      // (each event's last argument is its version: per user, in arrival order, they must grow and the events alternate)
      type Heard = { present: boolean; version: unknown };
      type Viewer = { socket: ClientSocket; views: { all: PresenceClient; room: PresenceClient; friends: PresenceClient; count: PresenceClient }; heard: Map<string, Heard[]> };
      const viewers: Viewer[] = [];
      for (let i = 0; i < 6; i++) {
        const socket = await connectClient(nodes[i % 3]!.port, { userId: `viewer-${i}` });
        await join(socket);
        const heard = new Map<string, Heard[]>();
        const hear = (present: boolean) => (userId: string, ...rest: unknown[]) => {
          if (!heard.has(userId)) heard.set(userId, []);
          heard.get(userId)!.push({ present, version: rest.at(-1) });
        };
        socket.on("user has connected", hear(true));
        socket.on("user has disconnected", hear(false));
        viewers.push({
          socket,
          heard,
          views: {
            all: createPresenceClient(socket),
            room: createPresenceClient(socket, { room: ROOM }),
            friends: createPresenceClient(socket, { userIds: FRIENDS }),
            count: createPresenceClient(socket, { countOnly: true }),
          },
        });
      }
      cleanup.push(() => viewers.forEach((viewer) => viewer.socket.close()));

      const tabs: Tab[] = [];
      cleanup.push(() => tabs.forEach((tab) => tab.socket.close()));
      const log: string[] = [];
      for (const op of ops!) {
        const tab = "tab" in op ? tabs[op.tab % Math.max(1, tabs.length)] : undefined;
        switch (op.op) {
          case "open": {
            const user = USERS[op.user]!;
            tabs.push({ user, socket: await connectClient(nodes[op.node]!.port, { userId: user }), inRoom: false, open: true });
            log.push(`open ${user}@${op.node}`);
            break;
          }
          case "close":
            if (!tab?.open) break;
            tab.open = false;
            tab.inRoom = false;
            tab.socket.close();
            log.push(`close ${tab.user}`);
            break;
          case "reconnect":
            // the tab drops and comes back on another node: a new socket
            if (!tab?.open) break;
            tab.socket.close();
            tab.socket = await connectClient(nodes[op.node]!.port, { userId: tab.user });
            tab.inRoom = false;
            log.push(`reconnect ${tab.user}@${op.node}`);
            break;
          case "join":
            if (!tab?.open || tab.inRoom) break;
            await join(tab.socket);
            tab.inRoom = true;
            log.push(`join ${tab.user}`);
            break;
          case "leave":
            if (!tab?.open || !tab.inRoom) break;
            await tab.socket.timeout(5000).emitWithAck("leave", ROOM);
            tab.inRoom = false;
            log.push(`leave ${tab.user}`);
            break;
          case "stall": {
            bus.stall(nodes[op.node]!.io.of("/"), op.ms);
            log.push(`stall node ${op.node} ${op.ms}ms`);
            break;
          }
          case "resubscribe":
            viewers[op.viewer % viewers.length]!.views.friends.resync();
            log.push(`resync viewer ${op.viewer % viewers.length}`);
            break;
        }
        if (next() < 0.3) await sleep(Math.floor(next() * 40));
      }
      console.log(`seed ${seed}: ${log.length} steps, ${dropped} relayed messages dropped: ${log.join(", ")}`);

      // quiescence: the truth is the test's own record of open tabs
      const viewerIds = viewers.map((_, i) => `viewer-${i}`);
      const online = new Set([...tabs.filter((tab) => tab.open).map((tab) => tab.user), ...viewerIds]);
      const inRoom = new Set([...tabs.filter((tab) => tab.open && tab.inRoom).map((tab) => tab.user), ...viewerIds]);
      const ids = (client: PresenceClient) => sorted(client.list().map((user) => user.userId));
      await waitFor(`seed ${seed}: every view at the truth`, () => {
        for (const [i, viewer] of viewers.entries()) {
          expect(ids(viewer.views.all), `viewer ${i} all`).toEqual(sorted(online));
          expect(ids(viewer.views.room), `viewer ${i} room`).toEqual(sorted(inRoom));
          expect(ids(viewer.views.friends), `viewer ${i} friends`).toEqual(sorted(FRIENDS.filter((user) => online.has(user))));
          expect(viewer.views.count.count, `viewer ${i} count`).toBe(online.size);
          for (const user of USERS) {
            // an observer's last event about a user is the truth (users never seen have no event)
            const events = viewer.heard.get(user) ?? [];
            if (events.length > 0 || online.has(user)) expect(events.at(-1)?.present, `viewer ${i}: last event about ${user}`).toBe(online.has(user));
          }
        }
      }, 20_000);
      // and it stays there through a quiet period
      await sleep(500);
      for (const viewer of viewers) expect(ids(viewer.views.all)).toEqual(sorted(online));
      // every event carries its version (the corrections after a dropped relay too), in the decider's order, alternating
      for (const [i, viewer] of viewers.entries()) {
        for (const [user, events] of viewer.heard) {
          const history = events.map((e) => `${e.present ? "+" : "-"}${String(e.version)}`).join(" ");
          for (const [k, event] of events.entries()) {
            expect(typeof event.version, `viewer ${i}: the version of an event about ${user} (${history})`).toBe("number");
            if (k === 0) continue;
            expect(event.version as number, `viewer ${i}: ${user}'s versions grow (${history})`).toBeGreaterThan(events[k - 1]!.version as number);
            expect(event.present, `viewer ${i}: ${user}'s events alternate (${history})`).not.toBe(events[k - 1]!.present);
          }
        }
      }
    });
  }
});
