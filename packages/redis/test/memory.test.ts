import { randomBytes } from "node:crypto";
import { expect, it } from "vitest";
import type { PresenceKeys } from "../src";
import { useRedis } from "./redis-fixture";

const redis = useRedis();

// a Socket.IO socket id: 20 characters
const socketId = () => randomBytes(15).toString("base64url");
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.admin.info("memory"))![1]);

/** Every page of a process's slots, with its encoding and length. */
async function pagesOf(keys: PresenceKeys, processId: string) {
  const pages = Number((await redis.admin.hget(keys.connections(processId), "p")) ?? 0);
  return Promise.all(
    Array.from({ length: pages }, async (_, page) => ({
      encoding: (await redis.admin.object("ENCODING", `${keys.slots(processId)}:${page}`)) as string | null,
      length: await redis.admin.hlen(`${keys.slots(processId)}:${page}`),
    })),
  );
}

it("keeps an online user under 100 bytes of Redis memory, its connection on a listpack page", { timeout: 60_000 }, async () => {
  const users = 20_000;
  const store = redis.deployment().store();
  await store.usersCount(); // registered: what follows is the users' own cost
  const before = await usedMemory();
  for (let i = 0; i < users; i += 500) {
    await Promise.all(Array.from({ length: 500 }, (_, j) => store.connect(socketId(), `user-${i + j}`)));
  }
  const perUser = ((await usedMemory()) - before) / users;
  expect(await store.usersCount()).toBe(users);
  expect(perUser).toBeLessThan(100); // 162 when each connection was a field named by its id
  const pages = await pagesOf(store.keys, store.processId!);
  expect(pages).toHaveLength(Math.ceil(users / 128));
  for (const page of pages) expect(page.encoding).toBe("listpack");
  expect(pages.reduce((sum, page) => sum + page.length, 0)).toBe(users);
});

it("keeps the pages compact through churn: freed slots are reused, pages never outgrow a listpack", { timeout: 60_000 }, async () => {
  const store = redis.deployment().store();
  let open: string[] = [];
  const userOf = new Map<string, string>();
  for (let round = 0; round < 6; round++) {
    // 1,000 more connections, then a random half of all closes
    const fresh = Array.from({ length: 1000 }, socketId);
    fresh.forEach((id, i) => userOf.set(id, `user-${(round * 1000 + i) % 1500}`));
    await Promise.all(fresh.map((id) => store.connect(id, userOf.get(id)!)));
    open.push(...fresh);
    const closing = new Set(open.filter(() => Math.random() < 0.5));
    await Promise.all([...closing].map((id) => store.disconnect(id)));
    open = open.filter((id) => !closing.has(id));
  }
  await store.settled();
  const pages = await pagesOf(store.keys, store.processId!);
  const counted = pages.reduce((sum, page) => sum + page.length, 0);
  expect(counted).toBe(open.length);
  expect(Number(await redis.admin.hget(store.keys.connections(store.processId!), "n"))).toBe(open.length);
  // at most one page more than the most connections ever open at once (about 1,500 + 1,000) needs
  expect(pages.length).toBeLessThanOrEqual(Math.ceil(2600 / 128) + 1);
  for (const page of pages) if (page.length > 0) expect(page.encoding).toBe("listpack");
  expect((await store.usersList()).sort()).toEqual([...new Set(open.map((id) => userOf.get(id)!))].sort());
});
