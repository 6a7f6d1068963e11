// 5. Redis memory per online user (INFO memory) at 100,000 users, one
// connection each: RedisStore vs the recipe's layout. BENCH_MEMORY_USERS sets
// another count (the README gives 1,000,000 too).
import { randomBytes, randomUUID } from "node:crypto";
import { RedisStore } from "@presence/redis";
import { Redis } from "ioredis";
import { repeat } from "./lib/measure.mjs";
import { createRecipe } from "./recipe/redis.mjs";

// a Socket.IO socket id: 20 characters
const socketId = () => randomBytes(15).toString("base64url");
const usedMemory = async (admin) => Number(/used_memory:(\d+)/.exec(await admin.info("memory"))[1]);

export async function redisMemory({ smoke, redis }) {
  const users = smoke ? 5_000 : Number(process.env.BENCH_MEMORY_USERS ?? 100_000);
  const runs = smoke ? 1 : 3;
  // a Redis that stops answering fails the run instead of hanging it
  const admin = new Redis(redis.url, { commandTimeout: 60_000 });

  const ours = await repeat(runs, async () => {
    await admin.flushall();
    const before = await usedMemory(admin);
    const store = new RedisStore({ redis: admin, prefix: `mem-${randomUUID()}` });
    for (let i = 0; i < users; i += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, users - i) }, (_, j) => store.connect(socketId(), `user-${i + j}`)));
    }
    const perUser = ((await usedMemory(admin)) - before) / users;
    await store.close();
    return perUser;
  });
  const recipe = await repeat(runs, async () => {
    await admin.flushall();
    const before = await usedMemory(admin);
    const r = await createRecipe(redis.url, `mem-${randomUUID()}`);
    for (let i = 0; i < users; i += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, users - i) }, (_, j) => r.handleConnection(`user-${i + j}`)));
    }
    const perUser = ((await usedMemory(admin)) - before) / users;
    await r.redisClient.quit();
    return perUser;
  });
  admin.disconnect();
  return [
    {
      bench: `5. Redis memory at ${users.toLocaleString("en")} online users`,
      subject: "RedisStore (slots on listpack pages)",
      peer: "recipe (user counts)",
      unit: "bytes/user",
      lowerIsBetter: true,
      ours,
      theirs: recipe,
    },
  ];
}
