-- Applies a batch of one process's operations, atomically.
--
-- KEYS[1] the process registry (zset: process id -> lease expiry, ms)
-- KEYS[2] the users hash (user id -> open connections, all processes)
-- KEYS[3] this process's connections (hash: connection id -> user id)
-- KEYS[4] this process's room memberships (hash: "<#connection id>:<connection id><room>" -> user id)
-- KEYS[5] the info hash (user id -> JSON, while online)
-- KEYS[6...] the rooms the batch touches (hash: user id -> connections in the room)
-- ARGV[1] process id, ARGV[2] lease in ms, then four arguments per operation:
--   "c", connection id, user id, info JSON or ""   connect
--   "d", connection id, "", ""                     disconnect (its rooms are left by "l" operations first)
--   "j", connection id, room, index of its key     join a room
--   "l", connection id, room, index of its key     leave a room
--   "u", user id, info JSON, ""                    update an online user's info
--
-- Returns one integer per operation: 1 when it was a transition (offline ->
-- online, online -> offline, entered or left the room, info updated), 0 when
-- nothing changed state, -1 when the connection already belongs to another
-- user. Repeating an operation changes nothing, so a retry never counts twice.
-- Fails with FENCED, applying nothing, once the process was declared dead.

local pid = ARGV[1]
local lease = tonumber(ARGV[2])
if not lease or (#ARGV - 2) % 4 ~= 0 then
  return redis.error_reply('ERR presence apply: malformed arguments')
end
for i = 3, #ARGV, 4 do
  local op = ARGV[i]
  if op == 'j' or op == 'l' then
    local index = tonumber(ARGV[i + 3])
    if not index or index < 6 or index > #KEYS then
      return redis.error_reply('ERR presence apply: bad room key index')
    end
  elseif op ~= 'c' and op ~= 'd' and op ~= 'u' then
    return redis.error_reply('ERR presence apply: unknown operation')
  end
end
if not redis.call('ZSCORE', KEYS[1], pid) then
  return redis.error_reply('FENCED process ' .. pid .. ' is not registered')
end

-- a write proves the process is alive: extend its lease
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', 'GT', now + lease, pid)

local users, connections, memberships, info = KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local results = {}
for i = 3, #ARGV, 4 do
  local op, a, b, c = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local result = 0
  if op == 'c' then
    if redis.call('HSETNX', connections, a, b) == 1 then
      if redis.call('HINCRBY', users, b, 1) == 1 then result = 1 end
      if c ~= '' then redis.call('HSET', info, b, c) end
    elseif redis.call('HGET', connections, a) ~= b then
      result = -1
    end
  elseif op == 'd' then
    local owner = redis.call('HGET', connections, a)
    if owner then
      redis.call('HDEL', connections, a)
      if redis.call('HINCRBY', users, owner, -1) <= 0 then
        redis.call('HDEL', users, owner)
        redis.call('HDEL', info, owner)
        result = 1
      end
    end
  elseif op == 'j' then
    local owner = redis.call('HGET', connections, a)
    if owner and redis.call('HSETNX', memberships, #a .. ':' .. a .. b, owner) == 1 then
      if redis.call('HINCRBY', KEYS[tonumber(c)], owner, 1) == 1 then result = 1 end
    end
  elseif op == 'l' then
    local field = #a .. ':' .. a .. b
    local owner = redis.call('HGET', memberships, field)
    if owner then
      redis.call('HDEL', memberships, field)
      if redis.call('HINCRBY', KEYS[tonumber(c)], owner, -1) <= 0 then
        redis.call('HDEL', KEYS[tonumber(c)], owner)
        result = 1
      end
    end
  else -- 'u'
    if redis.call('HEXISTS', users, a) == 1 then
      redis.call('HSET', info, a, b)
      result = 1
    end
  end
  results[#results + 1] = result
end
return results
