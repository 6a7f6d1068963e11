import { createPresenceClient } from "@presence/client";
import { ConnectionConflictError, type Transition } from "@presence/core";
import { describePresenceStore, waitFor } from "@presence/core/testing";
import { connectClient, describeBindingScenarios, startServer } from "@presence/socketio/testing";
import { afterEach, describe, expect, it } from "vitest";
import { BucketLayoutError, bucketOf, bucketTags } from "../src";
import { slotOf } from "../src/keys";
import { useRedis } from "./redis-fixture";

const redis = useRedis();
const BUCKETS = 4;

describePresenceStore("redis, 4 buckets", { create: () => redis.deployment({ buckets: BUCKETS }).store(), numRuns: 20 });

describeBindingScenarios("redis store, 4 buckets", {
  createStores: async (count) => {
    const deployment = redis.deployment({ buckets: BUCKETS });
    return Array.from({ length: count }, () => deployment.store());
  },
});

/** Ids of users who land in different buckets: `[in bucket a, in bucket b]`. */
function usersOf(buckets: number, a: number, b: number, count = 1): [string[], string[]] {
  const inA: string[] = [];
  const inB: string[] = [];
  for (let i = 0; inA.length < count || inB.length < count; i++) {
    const id = `user-${i}`;
    const bucket = bucketOf(id, buckets);
    if (bucket === a && inA.length < count) inA.push(id);
    if (bucket === b && inB.length < count) inB.push(id);
  }
  return [inA, inB];
}

describe("buckets on one Redis", () => {
  const closers: Array<() => Promise<unknown> | void> = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  it("spreads bucket tags evenly over the slot ranges, and a user always to the same bucket", () => {
    for (const buckets of [2, 3, 16, 48]) {
      const tags = bucketTags("presence", buckets);
      expect(new Set(tags).size).toBe(buckets);
      tags.forEach((tag, b) => {
        const slot = slotOf(tag);
        expect(slot).toBeGreaterThanOrEqual(Math.ceil((b * 16384) / buckets));
        expect(slot).toBeLessThan(Math.ceil(((b + 1) * 16384) / buckets));
      });
    }
    expect(bucketTags("presence", 1)).toEqual(["presence"]); // the layout before buckets
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[bucketOf(`u${i}`, 16)]!++;
    for (const count of counts) expect(Math.abs(count - 1000)).toBeLessThan(150);
    expect(bucketOf("alice", 16)).toBe(bucketOf("alice", 16));
    expect(slotOf("123456789")).toBe(12739); // CRC16 XMODEM's check value is 0x31C3; mod 16384
  });

  it("keeps each user's counts in their own bucket's keys alone, and sums and lists across buckets", async () => {
    const store = redis.deployment({ buckets: BUCKETS }).store();
    const users = Array.from({ length: 40 }, (_, i) => `u${i}`);
    for (const [i, userId] of users.entries()) {
      await store.connect(`c${i}`, userId, { i });
      await store.join(`c${i}`, i % 2 === 0 ? "even" : "odd");
    }
    for (const userId of users) {
      const home = bucketOf(userId, BUCKETS);
      for (const [b, keys] of store.bucketKeys.entries()) expect(await redis.admin.hget(keys.users, userId)).toBe(b === home ? "1" : null);
    }
    expect(new Set(users.map((userId) => bucketOf(userId, BUCKETS))).size).toBe(BUCKETS);
    expect(await store.usersCount()).toBe(40);
    expect(await store.roomUsersCount("even")).toBe(20);
    expect((await store.usersList()).sort()).toEqual([...users].sort());
    const evens: string[] = [];
    for await (const page of store.roomUsers("even", { pageSize: 3 })) for (const user of page) evens.push(user.userId);
    expect(evens.sort()).toEqual(users.filter((_, i) => i % 2 === 0).sort());
    expect(await store.userInfo("u7")).toEqual({ i: 7 });
    expect(await store.isUserInRoom("u7", "odd")).toBe(true);
    expect(await store.isUserConnected("u7")).toBe(true);
    expect(await store.isUserConnected("nobody")).toBe(false);
  });

  it("refuses a connection id this process holds open for a user of another bucket, changing nothing", async () => {
    const store = redis.deployment({ buckets: BUCKETS }).store();
    const [[alice], [bob]] = usersOf(BUCKETS, 0, 1);
    await store.connect("tab", alice!);
    await expect(store.connect("tab", bob!)).rejects.toBeInstanceOf(ConnectionConflictError);
    expect(await store.usersList()).toEqual([alice]);
    expect(await store.disconnect("tab")).toBe(true);
    expect(await store.usersCount()).toBe(0);
  });

  it("refuses every write of a store whose number of buckets is not the deployment's, writing nothing", async () => {
    const deployment = redis.deployment({ buckets: BUCKETS });
    const first = deployment.store();
    await first.connect("c1", "alice");
    const other = deployment.store({ buckets: 2 });
    const errors: unknown[] = [];
    other.onError((error) => errors.push(error));
    await waitFor("the layout check", () => expect(errors.length).toBeGreaterThan(0), 5000);
    expect(errors[0]).toBeInstanceOf(BucketLayoutError);
    await expect(other.connect("c2", "bob")).rejects.toMatchObject({ code: "BUCKET_LAYOUT", expected: 2, found: BUCKETS });
    await expect(other.updateInfo("alice", { x: 1 })).rejects.toBeInstanceOf(BucketLayoutError);
    expect(await first.usersList()).toEqual(["alice"]);
    expect(await other.usersCount()).toBe(0); // it reads its own layout: nothing was written there
  });

  it("keeps every view exact when one bucket's versions run far ahead of another's (two deciders, one view)", async () => {
    const store = redis.deployment({ buckets: 2 }).store();
    const [[near1, near2], [far]] = usersOf(2, 0, 1, 2);
    // bucket 1's counter eleven days of microseconds ahead: its versions are far above bucket 0's
    await store.settled();
    const farKeys = store.bucketKeys[1]!;
    const now = Number((await redis.admin.time())[0]) * 1e6;
    await redis.admin.set(farKeys.version, String(now + 1e12));
    const server = await startServer({ store });
    closers.push(() => server.close());
    const transitions: Transition[] = [];
    store.onTransition((transition) => transitions.push(transition));
    const observer = await connectClient(server.port, { userId: near1! });
    closers.push(() => void observer.close());
    const farTab = await connectClient(server.port, { userId: far! });
    closers.push(() => void farTab.close());
    const everyone = createPresenceClient(observer);
    const friends = createPresenceClient(observer, { userIds: [near2!, far!] });
    closers.push(() => everyone.close(), () => friends.close());
    const ids = (client: typeof everyone) => client.list().map((user) => user.userId).sort();
    await waitFor("the first states", () => expect([ids(everyone), friends.synced]).toEqual([[near1, far].sort(), true]), 5000);
    // a user of the lagging bucket: their versions are below every version the views saw so far
    const nearTab = await connectClient(server.port, { userId: near2! });
    closers.push(() => void nearTab.close());
    await waitFor("the lagging bucket's join in both views", () => expect([ids(everyone), ids(friends)]).toEqual([[near1, near2, far].sort(), [near2, far].sort()]), 5000);
    const versions = Object.fromEntries(transitions.map((t) => [t.userId, t.version!]));
    expect(versions[near2!]).toBeLessThan(versions[far!]!); // the case this test is about
    nearTab.close();
    await waitFor("the lagging bucket's leave in both views", () => expect([ids(everyone), ids(friends)]).toEqual([[near1, far].sort(), [far]]), 5000);
  });
});
