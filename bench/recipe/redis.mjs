// The classic recipe's Redis code, as published: node-redis, MULTI with
// HINCRBY on connect, its hDecr Lua script on disconnect, and its cleanup
// script for dead processes.
import { randomUUID } from "node:crypto";
import { createClient, defineScript } from "redis";

export const HDECR = `
local count = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)

if count == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end

return count
`;

export const CLEANUP = `
local disconnected_users = {}
local values = redis.call('HGETALL', KEYS[2])

for i = 1, #values, 2 do
  local user_id = values[i]
  local socket_count = tonumber(values[i + 1])
  local count = redis.call('HINCRBY', KEYS[1], user_id, -socket_count)

  if count == 0 then
    redis.call('HDEL', KEYS[1], user_id)
    table.insert(disconnected_users, user_id)
  end
end

redis.call('DEL', KEYS[2])

return disconnected_users
`;

export async function createRecipe(url, prefix = "recipe") {
  const redisClient = createClient({
    url,
    scripts: {
      hDecr: defineScript({
        NUMBER_OF_KEYS: 1,
        SCRIPT: HDECR,
        transformArguments(key, userId) {
          return [key, userId];
        },
      }),
      cleanup: defineScript({
        NUMBER_OF_KEYS: 2,
        SCRIPT: CLEANUP,
        transformArguments(key, processKey) {
          return [key, processKey];
        },
      }),
    },
  });
  await redisClient.connect();

  const processId = randomUUID();
  const usersKey = `${prefix}:users`;
  const processUsersKey = `${prefix}:${processId}:users`;

  async function handleConnection(userId) {
    const [res] = await redisClient.multi().hIncrBy(usersKey, userId, 1).hIncrBy(processUsersKey, userId, 1).exec();
    return res === 1;
  }

  async function handleDisconnection(userId) {
    const [res] = await redisClient.multi().hDecr(usersKey, userId).hDecr(processUsersKey, userId).exec();
    return res === 0;
  }

  return { redisClient, processId, usersKey, processUsersKey, handleConnection, handleDisconnection };
}
