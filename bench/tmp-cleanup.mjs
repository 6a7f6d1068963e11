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
// setup only: connection i of user u<i> in slot i of a process's connections
// KEYS[1], laid out as apply.lua writes them (pages of 128: src/slots.ts)
const FILL_SLOTS = `
local from, to = tonumber(ARGV[1]), tonumber(ARGV[2])
for page = math.floor(from / 128), math.floor((to - 1) / 128) do
  local batch = {}
  for i = math.max(from, page * 128), math.min(to, (page + 1) * 128) - 1 do
    batch[#batch + 1] = i % 128
    batch[#batch + 1] = 'u' .. i
  end
  redis.call('HSET', KEYS[1] .. ':' .. page, unpack(batch))
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


import { startRedisServer } from "@presence/redis/testing";
const server = await startRedisServer();
const admin = new Redis(server.url);
const count = 1_000_000;
const chunk = Number(process.env.CHUNK ?? 500);
for (let run = 0; run < 2; run++) {
  const prefix = `bench-${randomUUID()}`;
  const keys = presenceKeys(prefix);
  await fill(admin, FILL_SLOTS, [keys.connections("dead")], count);
  await fill(admin, FILL_USERS, [keys.users], count);
  await admin.zadd(keys.processes, 0, "dead");
  await admin.config("RESETSTAT");
  const started = Date.now();
  const store = new RedisStore({ redis: admin, prefix, heartbeatMs: 100, leaseTimeoutMs: 1000, cleanupChunkSize: chunk });
  await pollUntil(async () => (await admin.hlen(keys.users)) === 0 && !(await admin.exists(keys.connections("dead"))), { ms: 600000, what: "x" });
  console.log("chunk", chunk, "total ms", Date.now() - started);
  await store.close();
  const stats = await admin.info("commandstats");
  console.log(stats.split("\n").filter((l) => /calls=/.test(l)).map(l => l.replace(/,rejected.*/, "")).join("\n"));
}
admin.disconnect(); await server.stop();
