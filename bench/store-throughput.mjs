// 1. Store throughput: connect + disconnect operations per second, 256
// concurrent callers over 10,000 users. Memory store vs the recipe's Map;
// Redis store vs the recipe's node-redis MULTI + hDecr, and as a fraction of
// redis-benchmark's pipelined ceiling on the same server. The runs interleave
// (ours, the peer's, ...; who goes first turns each round), and each side
// gets the same client treatment: a fresh store or Map, and for Redis a fresh
// client of its own library per run, connected before the clock starts.
import { randomUUID } from "node:crypto";
import { MemoryStore } from "@presence/memory";
import { RedisStore } from "@presence/redis";
import { Redis } from "ioredis";
import { redisBenchmark, summarize, throughput } from "./lib/measure.mjs";
import { createRecipe as createMapRecipe } from "./recipe/standalone.mjs";
import { createRecipe as createRedisRecipe } from "./recipe/redis.mjs";

const TWO_HINCRBY = "redis.call('HINCRBY', KEYS[1], ARGV[1], 1) redis.call('HINCRBY', KEYS[2], ARGV[1], 1) return 1";

/** Runs every contender once per round, in a turning order (a contender goes first in one round, later in the next). */
async function interleaved(runs, contenders) {
  const values = contenders.map(() => []);
  for (let round = 0; round < runs; round++) {
    for (let k = 0; k < contenders.length; k++) {
      const i = (k + round) % contenders.length;
      values[i].push(await contenders[i]());
    }
  }
  return values.map(summarize);
}

export async function storeThroughput({ smoke, redis }) {
  const callers = 256;
  const users = 10_000;
  const runs = smoke ? 1 : 3;
  const memoryOps = smoke ? 20_000 : 1_000_000;
  const redisOps = smoke ? 5_000 : 200_000;

  const [memory, map] = await interleaved(runs, [
    async () => {
      const store = new MemoryStore();
      const rate = await throughput({
        callers,
        users,
        operations: memoryOps,
        connect: (c, u) => store.connect(c, u),
        disconnect: (c) => store.disconnect(c),
      });
      await store.close();
      return rate;
    },
    async () => {
      const recipe = createMapRecipe();
      return throughput({
        callers,
        users,
        operations: memoryOps,
        connect: async (_c, u) => recipe.handleConnection(u),
        disconnect: async (_c, u) => recipe.handleDisconnection(u),
      });
    },
  ]);

  // each side gets a fresh client of its own library per run, connected before the clock starts
  // (a Redis that stops answering fails the run instead of hanging it)
  const sha = redis.cli("SCRIPT", "LOAD", TWO_HINCRBY);
  const requests = smoke ? 20_000 : 1_000_000;
  const [ours, recipe, evalsha, hincrby] = await interleaved(runs, [
    async () => {
      const client = new Redis(redis.url, { commandTimeout: 60_000, lazyConnect: true });
      await client.connect();
      const store = new RedisStore({ redis: client, prefix: `bench-${randomUUID()}` });
      const rate = await throughput({
        callers,
        users,
        operations: redisOps,
        connect: (c, u) => store.connect(c, u),
        disconnect: (c) => store.disconnect(c),
      });
      await store.close();
      await client.quit();
      return rate;
    },
    async () => {
      const r = await createRedisRecipe(redis.url, `recipe-${randomUUID()}`);
      const rate = await throughput({
        callers,
        users,
        operations: redisOps,
        connect: (_c, u) => r.handleConnection(u),
        disconnect: (_c, u) => r.handleDisconnection(u),
      });
      await r.redisClient.quit();
      return rate;
    },
    () => redisBenchmark(redis.port, requests, ["EVALSHA", sha, "2", "ceil:users", "ceil:proc", "user"]),
    () => redisBenchmark(redis.port, requests, ["HINCRBY", "ceil:users", "user", "1"]),
  ]);

  const unit = "ops/s";
  return [
    { bench: "1. store throughput", subject: "MemoryStore", peer: "recipe Map", unit, ours: memory, theirs: map },
    { bench: "1. store throughput", subject: "RedisStore", peer: "recipe node-redis MULTI + hDecr", unit, ours, theirs: recipe },
    { bench: "1. store throughput", subject: "RedisStore", peer: "redis-benchmark EVALSHA (2 x HINCRBY), pipelined", unit, ours, theirs: evalsha },
    { bench: "1. store throughput", subject: "RedisStore", peer: "redis-benchmark HINCRBY, pipelined", unit, ours, theirs: hincrby },
  ];
}
