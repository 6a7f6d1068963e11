import { expect, it } from "vitest";
import { waitFor } from "@presence/core/testing";
import type { Redis } from "ioredis";
import { useRedis } from "./redis-fixture";

const redis = useRedis();

// Test setup only: writes a dead process holding connections `from` to `to`
// over `users` users straight into Redis, in server-side loops, as
// apply.lua lays them out: slot i is field i % 128 of page floor(i / 128)
// (src/slots.ts) of KEYS[2], and the connections key KEYS[1] counts them.
const POPULATE = `
local from, to, users = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for page = math.floor(from / 128), math.floor((to - 1) / 128) do
  local batch = {}
  for i = math.max(from, page * 128), math.min(to, (page + 1) * 128) - 1 do
    batch[#batch + 1] = i % 128
    batch[#batch + 1] = 'u' .. (i % users)
  end
  redis.call('HSET', KEYS[2] .. ':' .. page, unpack(batch))
end
redis.call('HINCRBY', KEYS[1], 'n', to - from)
redis.call('HSET', KEYS[1], 'p', math.max(tonumber(redis.call('HGET', KEYS[1], 'p')) or 0, math.floor((to - 1) / 128) + 1))
return 1
`;
/** How many connections of a process Redis still counts. */
const counted = async (admin: Redis, key: string) => Number((await admin.hget(key, "n")) ?? 0);

it("cleans up a dead process holding 1,000,000 connections without stalling Redis", { timeout: 120_000 }, async () => {
  const total = 1_000_000;
  const users = 100_000;
  const deployment = redis.deployment({ heartbeatMs: 200, leaseTimeoutMs: 1000 });
  const { admin } = redis;
  const keys = (await import("../src")).presenceKeys(deployment.prefix);

  for (let from = 0; from < total; from += 100_000) {
    await admin.eval(POPULATE, 2, keys.connections("dead-process"), keys.slots("dead-process"), from, from + 100_000, users);
  }
  for (let from = 0; from < users; from += 10_000) {
    const args: Array<string | number> = [];
    for (let u = from; u < from + 10_000; u++) args.push(`u${u}`, total / users);
    await admin.hset(keys.users, ...args);
  }
  await admin.zadd(keys.processes, 0, "dead-process"); // its lease ran out long ago
  expect(await counted(admin, keys.connections("dead-process"))).toBe(total);
  const scriptCalls = async () => {
    const stats = await admin.info("commandstats");
    return [...stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((sum, [, calls]) => sum + Number(calls), 0);
  };
  const callsBefore = await scriptCalls();

  // Another client asks Redis how many connections are left, again and again,
  // for the whole cleanup. Every answer strictly between the start and the end
  // is a moment Redis served someone else between two chunks: the recipe's
  // single script gives none (its one call holds Redis until it is done).
  const leaves: string[] = [];
  const survivor = deployment.store();
  survivor.onTransition((t) => t.type === "disconnected" && leaves.push(t.userId));
  await survivor.connect("live", "u0"); // u0 keeps a connection elsewhere
  // the cleanup takes several leases' time: the cleaner's own lease must hold throughout (no fence, no new id)
  const cleanerId = survivor.processId;
  expect(cleanerId).toBeDefined();
  let fencedAt: number | undefined;
  const watch = setInterval(() => (fencedAt ??= survivor.processId === cleanerId ? undefined : Date.now()), 20);
  const seen: number[] = [];
  const deadline = Date.now() + 100_000;
  for (let left = total; left > 0; ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for the cleanup of the dead process: ${left} of ${total} connections left`);
    left = await counted(admin, keys.connections("dead-process")); // a BUSY reply (a script holding Redis past its limit) would throw here
    seen.push(left);
  }
  await waitFor("the users hash to keep only u0, and every leave announced", async () => {
    expect(await admin.hlen(keys.users)).toBe(1);
    expect(leaves).toHaveLength(users - 1);
  }, 20_000);
  clearInterval(watch);
  expect(fencedAt, "the cleaner lost its own lease while it cleaned").toBeUndefined();
  expect(survivor.processId).toBe(cleanerId);
  const calls = (await scriptCalls()) - callsBefore;
  const midway = new Set(seen.filter((left) => left > 0 && left < total));
  console.log(`1,000,000-connection cleanup: ${calls} script calls; another client answered ${seen.length} times, ${midway.size} of them mid-cleanup at distinct points`);

  // the cleanup only ever removes: the answers never go up
  seen.forEach((left, i) => i > 0 && expect(left, `answer ${i} after ${seen[i - 1]}`).toBeLessThanOrEqual(seen[i - 1]!));
  // chunked: at least one script call per cleanupChunkSize (500) connections
  expect(calls).toBeGreaterThanOrEqual(total / 500);
  // and never holding Redis for the whole run: answered between chunks, for at least a quarter of them (about 1,700 of 2,000 here)
  expect(midway.size).toBeGreaterThanOrEqual(total / 500 / 4);
  expect(await admin.hgetall(keys.users)).toEqual({ u0: "1" });
  expect(leaves).toHaveLength(users - 1);
  expect(new Set(leaves).size).toBe(users - 1);
  expect(await admin.hlen(keys.cleanups)).toBe(0);
});

it("a cleaner that closes mid-cleanup stops between chunks, and another finishes: every leave announced once", { timeout: 120_000 }, async () => {
  const total = 200_000; // one user per connection: every connection removed is a leave
  const deployment = redis.deployment({ heartbeatMs: 100, leaseTimeoutMs: 1000, leaveGraceMs: 0 });
  const { admin } = redis;
  const keys = (await import("../src")).presenceKeys(deployment.prefix);
  for (let from = 0; from < total; from += 100_000) {
    await admin.eval(POPULATE, 2, keys.connections("dead-process"), keys.slots("dead-process"), from, from + 100_000, total);
  }
  for (let from = 0; from < total; from += 10_000) {
    const args: Array<string | number> = [];
    for (let u = from; u < from + 10_000; u++) args.push(`u${u}`, 1);
    await admin.hset(keys.users, ...args);
  }
  await admin.zadd(keys.processes, 0, "dead-process");

  const heard = new Map<string, number>();
  const hear = (t: { type: string; userId: string }) => t.type === "disconnected" && heard.set(t.userId, (heard.get(t.userId) ?? 0) + 1);
  const first = deployment.store();
  first.onTransition(hear);
  await first.usersCount(); // registered: its heartbeat starts the cleanup
  const deadline = Date.now() + 60_000;
  const left = () => counted(admin, keys.connections("dead-process"));
  while ((await left()) > total * 0.75) if (Date.now() > deadline) throw new Error("timed out waiting for the first cleaner to start");
  await first.close();
  const leftAtClose = await left();
  // it stopped between chunks: the rest is left for another cleaner (a close does not wait for a whole cleanup)
  expect(leftAtClose).toBeGreaterThan(0);
  expect(heard.size).toBe(total - leftAtClose);

  const second = deployment.store();
  second.onTransition(hear);
  await waitFor("the second cleaner to finish the cleanup", async () => {
    expect(await left()).toBe(0);
    expect(await admin.hlen(keys.users)).toBe(0);
    expect(heard.size).toBe(total);
  }, 60_000);
  expect([...heard.values()].filter((times) => times !== 1)).toEqual([]);
  expect(await admin.hlen(keys.cleanups)).toBe(0);
});

it("ends a cleanup whose count went wrong (a page deleted by hand) after a pass that finds nothing, and never deletes connections of another data layout unread", { timeout: 60_000 }, async () => {
  const deployment = redis.deployment({ heartbeatMs: 100, leaseTimeoutMs: 1000, cleanupChunkSize: 200 });
  const { admin } = redis;
  const keys = (await import("../src")).presenceKeys(deployment.prefix);
  await admin.eval(POPULATE, 2, keys.connections("miscounted"), keys.slots("miscounted"), 0, 1000, 1000);
  await admin.hset(keys.users, ...Array.from({ length: 1000 }, (_, u) => [`u${u}`, 1]).flat());
  await admin.del(`${keys.slots("miscounted")}:3`); // 128 connections gone, still counted
  // a dead process of data layout 1 (0.1): connection id -> user id, in the connections key itself
  await admin.hset(keys.connections("layout-1"), "socket-a", "old-user");
  await admin.hset(keys.users, "old-user", 1);
  await admin.zadd(keys.processes, 0, "miscounted", 0, "layout-1");
  const errors: unknown[] = [];
  const store = deployment.store();
  store.onError((error) => errors.push(error));
  await store.usersCount();
  await waitFor("the miscounted cleanup to end", async () => {
    expect(await admin.exists(keys.connections("miscounted"))).toBe(0);
    expect(await admin.hexists(keys.cleanups, "miscounted")).toBe(0);
  }, 20_000);
  // every connection that was there is gone; the 128 deleted by hand stay counted (nothing says who they were)
  expect(await admin.hlen(keys.users)).toBe(128 + 1);
  // the layout-1 process is refused, its connections kept for a store of its own layout
  await waitFor("the refusal", () => expect(errors.some((error) => /another data layout/.test(String(error)))).toBe(true), 10_000);
  expect(await admin.hgetall(keys.connections("layout-1"))).toEqual({ "socket-a": "old-user" });
  expect(await admin.hget(keys.users, "old-user")).toBe("1");
});
