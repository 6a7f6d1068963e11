import { ConnectionConflictError, type Transition } from "@presence/core";
import { eventually } from "@presence/core/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMemoryChannel, type MemoryWorkerChannel } from "./channel";
import { ClusterStore } from "./cluster-store";
import { PresencePrimary } from "./primary";

const USERS = ["u0", "u1", "u2"];
const ROOMS = ["r0", "r1"];
const WORKERS = 3;

const command = fc.oneof(
  fc.record({ op: fc.constant("connect" as const), worker: fc.nat(WORKERS - 1), conn: fc.nat(3), user: fc.constantFrom(...USERS) }),
  fc.record({ op: fc.constant("disconnect" as const), pick: fc.nat(20) }),
  fc.record({ op: fc.constant("join" as const), pick: fc.nat(20), room: fc.constantFrom(...ROOMS) }),
  fc.record({ op: fc.constant("leave" as const), pick: fc.nat(20), room: fc.constantFrom(...ROOMS) }),
  fc.record({ op: fc.constant("update" as const), worker: fc.nat(WORKERS - 1), user: fc.constantFrom(...USERS), status: fc.nat(9) }),
  fc.record({ op: fc.constant("kill" as const), worker: fc.nat(WORKERS - 1) }),
);
type Command = typeof command extends fc.Arbitrary<infer C> ? C : never;

/** A connection the app holds, as the test itself records it (never read back from the primary). */
interface Held {
  user: string;
  worker: number;
  rooms: Set<string>;
}

/**
 * The test's own record of what is counted: the connections open on live
 * workers, and those of killed workers still inside the leave grace; and,
 * from it, every transition each user and room member must be announced,
 * in order.
 */
class Model {
  readonly open = new Map<string, Held>();
  readonly lingering = new Map<string, Held>();
  /** Per user ("u0") and per room member ("r0 u0"): the transitions expected, in order. */
  readonly logs = new Map<string, string[]>();

  online(user: string): boolean {
    return [...this.counted()].some((held) => held.user === user);
  }

  inRoom(user: string, room: string): boolean {
    return [...this.counted()].some((held) => held.user === user && held.rooms.has(room));
  }

  expect(key: string, type: string): void {
    this.logs.set(key, [...(this.logs.get(key) ?? []), type]);
  }

  /** Removes connections from the count, expecting what that leaves empty. */
  remove(held: Held[], from: Map<string, Held>): void {
    for (const [conn, entry] of [...from]) if (held.includes(entry)) from.delete(conn);
    for (const entry of held) {
      for (const room of entry.rooms) if (!this.inRoom(entry.user, room)) this.expectOnce(`${room} ${entry.user}`, "left");
      if (!this.online(entry.user)) this.expectOnce(entry.user, "disconnected");
    }
  }

  /** A removal of several connections of one user makes one transition, not one per connection. */
  expectOnce(key: string, type: string): void {
    if (this.logs.get(key)?.at(-1) !== type) this.expect(key, type);
  }

  *counted(): Iterable<Held> {
    yield* this.open.values();
    yield* this.lingering.values();
  }
}

const describeTransition = (t: Transition): [string, string] =>
  t.type === "joined" || t.type === "left" ? [`${t.room} ${t.userId}`, t.type] : [t.userId, t.type];

async function run(commands: Command[], leaveGraceMs: number): Promise<void> {
  const channel = createMemoryChannel();
  const primary = new PresencePrimary(channel.primary, { leaveGraceMs });
  const heard: Transition[] = [];
  const start = () => {
    const link = channel.worker();
    const store = new ClusterStore({ channel: link });
    store.onTransition((t) => heard.push(t));
    return { link, store };
  };
  const workers: Array<{ link: MemoryWorkerChannel; store: ClusterStore }> = Array.from({ length: WORKERS }, start);
  const incarnation = Array.from({ length: WORKERS }, () => 0);
  const model = new Model();
  const logs = () => {
    const byKey = new Map<string, string[]>();
    for (const t of heard) {
      const [key, type] = describeTransition(t);
      byKey.set(key, [...(byKey.get(key) ?? []), type]);
    }
    return Object.fromEntries([...byKey].sort());
  };
  const expected = () => Object.fromEntries([...model.logs].sort());
  const quiet = (what: string) =>
    eventually(() => expect(primary.pendingAnnouncements, `announcements pending ${what}`).toBe(0), 5000, 5);
  const picked = (pick: number) => {
    const conns = [...model.open.keys()];
    return conns.length === 0 ? undefined : conns[pick % conns.length]!;
  };
  try {
    for (const cmd of commands) {
      switch (cmd.op) {
        case "connect": {
          const conn = `w${cmd.worker}.${incarnation[cmd.worker]}-c${cmd.conn}`;
          const store = workers[cmd.worker]!.store;
          const held = model.open.get(conn);
          if (held && held.user !== cmd.user) {
            await expect(store.connect(conn, cmd.user)).rejects.toBeInstanceOf(ConnectionConflictError);
            break;
          }
          const wentOnline = !held && !model.online(cmd.user);
          if (!held) model.open.set(conn, { user: cmd.user, worker: cmd.worker, rooms: new Set() });
          if (wentOnline) model.expect(cmd.user, "connected");
          expect(await store.connect(conn, cmd.user), `connect ${conn} ${cmd.user}`).toBe(wentOnline);
          break;
        }
        case "disconnect": {
          const conn = picked(cmd.pick);
          if (conn === undefined) break;
          const held = model.open.get(conn)!;
          model.remove([held], model.open);
          expect(await workers[held.worker]!.store.disconnect(conn), `disconnect ${conn}`).toBe(!model.online(held.user));
          break;
        }
        case "join":
        case "leave": {
          const conn = picked(cmd.pick);
          if (conn === undefined) break;
          const held = model.open.get(conn)!;
          const before = model.inRoom(held.user, cmd.room);
          if (cmd.op === "join") held.rooms.add(cmd.room);
          else held.rooms.delete(cmd.room);
          const changed = before !== model.inRoom(held.user, cmd.room);
          if (changed) model.expect(`${cmd.room} ${held.user}`, cmd.op === "join" ? "joined" : "left");
          expect(await workers[held.worker]!.store[cmd.op](conn, cmd.room), `${cmd.op} ${conn} ${cmd.room}`).toBe(changed);
          break;
        }
        case "update": {
          const online = model.online(cmd.user);
          if (online) model.expect(cmd.user, "updated");
          expect(await workers[cmd.worker]!.store.updateInfo(cmd.user, { status: cmd.status }), `update ${cmd.user}`).toBe(online);
          break;
        }
        case "kill": {
          workers[cmd.worker]!.link.kill();
          const held = [...model.open.values()].filter((entry) => entry.worker === cmd.worker);
          if (leaveGraceMs === 0) {
            model.remove(held, model.open);
          } else {
            // counted on through the grace, which outlasts the run
            for (const [conn, entry] of [...model.open]) if (held.includes(entry)) (model.open.delete(conn), model.lingering.set(conn, entry));
          }
          incarnation[cmd.worker]!++;
          workers[cmd.worker] = start();
          await new Promise((resolve) => setImmediate(resolve)); // the primary hears of the death (queued by kill())
          break;
        }
      }
    }
    await quiet("after the calls");
    expect(logs()).toEqual(expected());

    // every store closes, one after the other: the last takes every remaining connection (lingering ones too) with it
    for (const { store } of workers) await store.close();
    model.remove([...model.open.values()], model.open);
    model.remove([...model.lingering.values()], model.lingering);
    await quiet("after closing");
    expect(primary.storesInGrace).toBe(0);
    expect(primary.presence.connectionsCount).toBe(0);
    expect(logs()).toEqual(expected());

    // and each user's transitions were heard in the decider's order
    for (const user of USERS) {
      const versions = heard.filter((t) => t.userId === user).map((t) => t.version!);
      for (let i = 1; i < versions.length; i++) expect(versions[i]!, `${user}'s versions in the order heard`).toBeGreaterThan(versions[i - 1]!);
    }
  } finally {
    await Promise.allSettled(workers.map(({ store }) => store.close()));
    primary.close();
  }
}

/**
 * Exactly once, whatever the interleaving: random calls on three "workers"
 * of one deployment, some of them killed (and replaced) along the way. Every
 * announcement any store makes is logged per user and per room member, and
 * the logs must equal, exactly, what the test's own record of the open
 * connections says they must be.
 */
describe("a deployment of workers that die at random", () => {
  it("announces each user's and room member's transitions exactly once, in order (killed workers removed at once)", async () => {
    await fc.assert(fc.asyncProperty(fc.array(command, { maxLength: 40 }), (commands) => run(commands, 0)), { numRuns: 50 });
  });

  it("... and with a leave grace that keeps a killed worker's connections counted", async () => {
    await fc.assert(fc.asyncProperty(fc.array(command, { maxLength: 40 }), (commands) => run(commands, 60_000)), { numRuns: 50 });
  });
});
