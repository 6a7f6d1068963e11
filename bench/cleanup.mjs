// 2. Crash cleanup at scale: a dead process holding N connections (1,000,000
// by default); the total cleanup time and the worst stall a second client
// sees while pinging Redis in a loop, vs the recipe's single cleanup script.
import { randomUUID } from "node:crypto";
import { RedisStore, presenceKeys } from "@presence/redis";
import { startPinger } from "@presence/redis/testing";
import { Redis } from "ioredis";
import { CLEANUP } from "./recipe/redis.mjs";
import { pollUntil } from "./lib/deadline.mjs";
import { summarize } from "./lib/measure.mjs";


// setup only, in server-side loops: `u<i> -> 1` for i in [from, to) into each of KEYS
const FILL_USERS = `
local from, to = tonumber(ARGV[1]), tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  local batch = {}
  for i = from, to - 1 do
    batch[#batch + 1] = 'u' .. i
    batch[#batch + 1] = '1'
    if #batch >= 2000 then redis.call('HSET', key, unpack(batch)); batch = {} end
  end
  if #batch > 0 then redis.call('HSET', key, unpack(batch)) end
end
return 1
`;
// setup only: connection i of user u<i> in slot i of a process, laid out as
// apply.lua writes them: pages of 128 (src/slots.ts) named KEYS[2], counted
// in its connections key KEYS[1]
const FILL_SLOTS = `
local from, to = tonumber(ARGV[1]), tonumber(ARGV[2])
for page = math.floor(from / 128), math.floor((to - 1) / 128) do
  local batch = {}
  for i = math.max(from, page * 128), math.min(to, (page + 1) * 128) - 1 do
    batch[#batch + 1] = i % 128
    batch[#batch + 1] = 'u' .. i
  end
  redis.call('HSET', KEYS[2] .. ':' .. page, unpack(batch))
end
redis.call('HINCRBY', KEYS[1], 'n', to - from)
redis.call('HSET', KEYS[1], 'p', math.max(tonumber(redis.call('HGET', KEYS[1], 'p')) or 0, math.floor((to - 1) / 128) + 1))
return 1
`;

async function fill(admin, script, keys, count) {
  for (let from = 0; from < count; from += 100_000) {
    await admin.eval(script, keys.length, ...keys, from, Math.min(count, from + 100_000));
  }
}

export async function cleanupAtScale({ smoke, redis }) {
  const count = Number(process.env.BENCH_CLEANUP_CONNECTIONS ?? (smoke ? 20_000 : 1_000_000));
  const runs = smoke ? 1 : 3;
  // a Redis that stops answering fails the run instead of hanging it
  const admin = new Redis(redis.url, { commandTimeout: 60_000 });
  const oursTime = [];
  const oursStall = [];
  const recipeTime = [];
  const recipeStall = [];

  for (let run = 0; run < runs; run++) {
    // ours: N connections of N users in a dead process, cleaned by a survivor
    const prefix = `bench-${randomUUID()}`;
    const keys = presenceKeys(prefix);
    await fill(admin, FILL_SLOTS, [keys.connections("dead"), keys.slots("dead")], count);
    await fill(admin, FILL_USERS, [keys.users], count);
    await admin.zadd(keys.processes, 0, "dead");
    let pinger = await startPinger(redis.url);
    let started = Date.now();
    const store = new RedisStore({ redis: admin, prefix, heartbeatMs: 100, leaseTimeoutMs: 1000 });
    await pollUntil(async () => (await admin.hlen(keys.users)) === 0 && !(await admin.exists(keys.connections("dead"))), {
      ms: smoke ? 60_000 : 600_000,
      what: `RedisStore to clean up ${count.toLocaleString("en")} connections of a dead process`,
    });
    oursTime.push(Date.now() - started);
    oursStall.push((await pinger.stop()).worst);
    await store.close();

    // the recipe: its process hash (user -> count) for the same N, one cleanup script call
    const users = `recipe-${randomUUID()}:users`;
    const processUsers = `${users}:dead`;
    await fill(admin, FILL_USERS, [processUsers, users], count);
    pinger = await startPinger(redis.url);
    started = Date.now();
    await admin.eval(CLEANUP, 2, users, processUsers);
    recipeTime.push(Date.now() - started);
    recipeStall.push((await pinger.stop()).worst);
  }
  admin.disconnect();

  return [
    { bench: `2. crash cleanup, ${count.toLocaleString("en")} connections`, subject: "RedisStore (chunked)", peer: "recipe cleanup script", unit: "worst ping ms", lowerIsBetter: true, ours: summarize(oursStall), theirs: summarize(recipeStall) },
    { bench: `2. crash cleanup, ${count.toLocaleString("en")} connections`, subject: "RedisStore (chunked)", peer: "recipe cleanup script", unit: "total ms", lowerIsBetter: true, ours: summarize(oursTime), theirs: summarize(recipeTime) },
  ];
}
