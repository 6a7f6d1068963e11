import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Transition } from "@presence/core";
import { eventually as poll } from "@presence/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import type { RedisStore } from "../src";
import { within } from "./harness";
import { useRedis } from "./redis-fixture";

const redis = useRedis();
const holderScript = fileURLToPath(new URL("./fixtures/holder.mjs", import.meta.url));
const FAST = { heartbeatMs: 200, leaseTimeoutMs: 600 };

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

/** Starts a holder process; resolves once its connections are all counted. */
async function holder(prefix: string, specs: string[]) {
  const child = spawn(
    process.execPath,
    [holderScript, redis.server.url, prefix, String(FAST.heartbeatMs), String(FAST.leaseTimeoutMs), ...specs],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  children.push(child);
  const [line] = (await within(`holder ${specs.join(" ")} to report its connections counted`, once(createInterface({ input: child.stdout! }), "line"))) as [string];
  return { child, ...(JSON.parse(line) as { processId: string; connections: number }) };
}

function record(stores: RedisStore[]) {
  const leaves: string[] = [];
  const joins: string[] = [];
  for (const store of stores) {
    store.onTransition((t: Transition) => (t.type === "disconnected" ? leaves : joins).push(t.userId));
  }
  return { leaves, joins };
}

const eventually = (check: () => unknown, timeoutMs = 10_000) => poll(check, timeoutMs, 25);

/**
 * One atomic look at Redis (MULTI): its clock, a process's lease expiry (ms
 * on that clock, or null once a cleaner claimed it), and whether `userId` is
 * still counted.
 */
async function leaseAndUser(store: RedisStore, processId: string, userId: string) {
  const replies = (await redis.admin.multi().time().zscore(store.keys.processes, processId).hexists(store.keys.users, userId).exec())!;
  const [[, time], [, lease], [, counted]] = replies as unknown as [[null, [string, string]], [null, string | null], [null, number]];
  return { now: Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000), lease: lease === null ? null : Number(lease), counted: counted === 1 };
}

const countsOf = async (usersKey: string) =>
  Object.fromEntries(Object.entries(await redis.admin.hgetall(usersKey)).map(([k, v]) => [k, Number(v)]));

describe("crash cleanup on real Redis", () => {
  it("removes a process killed with SIGKILL once its lease ran out, announcing each leave once", async () => {
    const deployment = redis.deployment(FAST);
    const survivors = [deployment.store(), deployment.store()];
    await survivors[0]!.connect("s1", "shared");
    await survivors[1]!.connect("s2", "bob");
    const victim = await holder(deployment.prefix, ["v1=alice", "v2=alice", "v3=shared", "v4=carol"]);
    expect((await survivors[0]!.usersList()).sort()).toEqual(["alice", "bob", "carol", "shared"]);

    const { leaves } = record(survivors);
    victim.child.kill("SIGKILL");
    // Order on Redis's own clock, not the test's: while the victim's lease
    // holds, nobody removes its users; once they are gone, so is its lease.
    // (How soon after the lease they go is a bound of the design, not timed here.)
    let whileLeaseHeld = 0;
    await eventually(async () => {
      const look = await leaseAndUser(survivors[0]!, victim.processId, "alice");
      if (look.lease !== null && look.lease > look.now) {
        whileLeaseHeld++;
        expect(look.counted, `alice counted at ${look.now} while the lease holds until ${look.lease}`).toBe(true);
      }
      if (!look.counted) expect(look.lease === null || look.lease <= look.now, "the lease of a process whose users were removed").toBe(true);
      expect((await survivors[1]!.usersList()).sort()).toEqual(["bob", "shared"]);
    });
    console.log(`looks at Redis while the killed process's lease still held: ${whileLeaseHeld}`);

    await new Promise((r) => setTimeout(r, 3 * FAST.heartbeatMs));
    expect(leaves.sort()).toEqual(["alice", "carol"]);
    expect(await countsOf(survivors[0]!.keys.users)).toEqual({ shared: 1, bob: 1 });
    expect(await redis.admin.exists(survivors[0]!.keys.connections(victim.processId))).toBe(0);
    expect(await redis.admin.zscore(survivors[0]!.keys.processes, victim.processId)).toBeNull();
  });

  it("takes a killed process's connections out of their rooms, announcing each room leave once", async () => {
    const deployment = redis.deployment({ ...FAST, cleanupChunkSize: 3 });
    const survivors = [deployment.store(), deployment.store()];
    await survivors[0]!.connect("s1", "alice");
    await survivors[0]!.join("s1", "lobby");
    const victim = await holder(deployment.prefix, ["v1=alice@lobby,kitchen", "v2=bob@lobby,kitchen,attic", "v3=bob@lobby", "v4=carol@attic"]);
    expect(await survivors[1]!.roomUsersCount("lobby")).toBe(2);
    expect(await survivors[1]!.roomUsersCount("kitchen")).toBe(2);

    const left: string[] = [];
    for (const store of survivors) store.onTransition((t) => t.type === "left" && left.push(`${t.room}:${t.userId}`));
    victim.child.kill("SIGKILL");
    await eventually(async () => expect(await survivors[1]!.usersList()).toEqual(["alice"]));
    await new Promise((r) => setTimeout(r, 3 * FAST.heartbeatMs));
    expect(left.sort()).toEqual(["attic:bob", "attic:carol", "kitchen:alice", "kitchen:bob", "lobby:bob"]);
    expect(await survivors[0]!.roomUsersCount("lobby")).toBe(1);
    expect(await survivors[0]!.isUserInRoom("alice", "lobby")).toBe(true);
    for (const room of ["kitchen", "attic"]) expect(await redis.admin.exists(survivors[0]!.keys.room(room))).toBe(0);
    expect(await redis.admin.exists(survivors[0]!.keys.memberships(victim.processId))).toBe(0);
  });

  it("lets three processes race to clean one dead process: every leave exactly once", async () => {
    const deployment = redis.deployment({ ...FAST, cleanupChunkSize: 50 });
    const cleaners = [deployment.store(), deployment.store(), deployment.store()];
    await cleaners[0]!.connect("keep", "user-0"); // user-0 stays online
    const victim = await holder(deployment.prefix, ["@6000/1500"]);
    expect(await cleaners[0]!.usersCount()).toBe(1500);

    const { leaves } = record(cleaners);
    victim.child.kill("SIGKILL");
    await eventually(async () => expect(await cleaners[2]!.usersCount()).toBe(1), 15_000);
    await new Promise((r) => setTimeout(r, 3 * FAST.heartbeatMs));

    expect(leaves).toHaveLength(1499);
    expect(new Set(leaves).size).toBe(1499);
    expect(leaves).not.toContain("user-0");
    expect(await countsOf(cleaners[0]!.keys.users)).toEqual({ "user-0": 1 });
    expect(await redis.admin.hlen(cleaners[0]!.keys.cleanups)).toBe(0);
  });

  it("keeps working through SCRIPT FLUSH mid-run", async () => {
    const store = redis.deployment().store();
    const truth = new Map<string, string>();
    for (let round = 0; round < 20; round++) {
      if (round % 5 === 2) expect(redis.server.cli("SCRIPT", "FLUSH")).toBe("OK");
      const ops: Promise<boolean>[] = [];
      for (let i = 0; i < 50; i++) {
        const connectionId = `r${round}-c${i}`;
        const userId = `user-${(round * 50 + i) % 37}`;
        truth.set(connectionId, userId);
        ops.push(store.connect(connectionId, userId));
      }
      for (const connectionId of [...truth.keys()].slice(0, 20)) {
        truth.delete(connectionId);
        ops.push(store.disconnect(connectionId));
      }
      await Promise.all(ops);
    }
    const expected: Record<string, number> = {};
    for (const userId of truth.values()) expected[userId] = (expected[userId] ?? 0) + 1;
    expect(await countsOf(store.keys.users)).toEqual(expected);
  });

  it("never double counts when its connection is killed (CLIENT KILL) during a connection storm", async () => {
    const store = redis.deployment({ commandTimeoutMs: 2000 }).store();
    const joins = new Map<string, number>();
    const join = (userId: string) => joins.set(userId, (joins.get(userId) ?? 0) + 1);
    store.onTransition((t) => t.type === "connected" && join(t.userId));
    store.onError(() => {});
    await store.usersCount(); // connected and registered

    const calls: Promise<void>[] = [];
    for (let i = 0; i < 4000; i++) {
      const userId = `user-${i % 1000}`;
      calls.push(
        store.connect(`c${i}`, userId).then(
          () => {}, // a join is announced through onTransition, before the call resolves
          () => {}, // in doubt: settled by the store, and announced then
        ),
      );
      if (i === 1500 || i === 3000) {
        const killed = Number(redis.server.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"));
        expect(killed).toBeGreaterThan(0);
      }
      if (i % 250 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(calls);
    await eventually(async () => {
      const counts = await countsOf(store.keys.users);
      expect(Object.keys(counts)).toHaveLength(1000);
      expect(Object.values(counts).every((n) => n === 4)).toBe(true);
    });
    // every user's join was announced, and none twice
    expect(Object.fromEntries(joins)).toEqual(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`user-${i}`, 1])));
  });
});
