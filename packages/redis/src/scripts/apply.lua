-- Applies batch number ARGV[3] of one process's operations, atomically, and
-- records it: the process's record keeps the number of the last batch
-- applied and its results, so that a batch whose reply was lost is answered
-- from Redis's record of it, never applied twice.
--
-- KEYS[1] the process registry (zset: process id -> lease expiry, ms)
-- KEYS[2] the users hash (user id -> open connections, all processes)
-- KEYS[3] this process's connections (hash: connection id -> user id)
-- KEYS[4] this process's room memberships (hash: pack(connection id, room) -> user id)
-- KEYS[5] the info hash (user id -> JSON, while online)
-- KEYS[6] this process's record (hash: seq, reply)
-- KEYS[7...] the rooms the batch touches (hash: user id -> connections in the room)
-- ARGV[1] process id, ARGV[2] lease in ms, ARGV[3] batch number (1, 2, ...),
-- then four arguments per operation:
--   "c", connection id, user id, info JSON or ""   connect (sets the info)
--   "r", connection id, user id, info JSON or ""   republish a connection (sets the info only if the user has none)
--   "d", connection id, "", ""                     disconnect (its rooms are left by "l" operations first)
--   "j", connection id, room, index of its key     join a room
--   "l", connection id, room, index of its key     leave a room
--   "u", user id, info JSON, ""                    update an online user's info
--
-- Returns one integer per operation: 1 when it was a transition (offline ->
-- online, online -> offline, entered or left the room, info updated), 0 when
-- nothing changed state, -1 when the connection already belongs to another
-- user. The same batch number again returns the recorded results and changes
-- nothing. Fails, applying nothing, with "FENCED gone" once the process is
-- not registered, and "FENCED behind" when the record is not at the previous
-- batch (Redis went back in time).

--- @include "includes/clock.lua"
--- @include "includes/pack.lua"

local pid = ARGV[1]
local lease, seq = tonumber(ARGV[2]), tonumber(ARGV[3])
if not lease or not seq or (#ARGV - 3) % 4 ~= 0 then
  return redis.error_reply('ERR presence apply: malformed arguments')
end
for i = 4, #ARGV, 4 do
  local op = ARGV[i]
  if op == 'j' or op == 'l' then
    local index = tonumber(ARGV[i + 3])
    if not index or index < 7 or index > #KEYS then
      return redis.error_reply('ERR presence apply: bad room key index')
    end
  elseif op ~= 'c' and op ~= 'r' and op ~= 'd' and op ~= 'u' then
    return redis.error_reply('ERR presence apply: unknown operation')
  end
end
if not redis.call('ZSCORE', KEYS[1], pid) then
  return redis.error_reply('FENCED gone')
end
local record = redis.call('HMGET', KEYS[6], 'seq', 'reply')
local applied = tonumber(record[1])
if applied == seq then
  local results = {}
  for i = 1, #record[2] do
    local ch = string.sub(record[2], i, i)
    results[i] = ch == 'x' and -1 or tonumber(ch)
  end
  return results
end
if applied ~= seq - 1 then
  return redis.error_reply('FENCED behind')
end

-- a write proves the process is alive: extend its lease
redis.call('ZADD', KEYS[1], 'XX', 'GT', now_ms() + lease, pid)

local users, connections, memberships, info = KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local results, reply = {}, {}
for i = 4, #ARGV, 4 do
  local op, a, b, c = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local result = 0
  if op == 'c' or op == 'r' then
    if redis.call('HSETNX', connections, a, b) == 1 then
      if redis.call('HINCRBY', users, b, 1) == 1 then result = 1 end
      if c ~= '' then
        if op == 'c' then redis.call('HSET', info, b, c) else redis.call('HSETNX', info, b, c) end
      end
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
    if owner and redis.call('HSETNX', memberships, pack(a, b), owner) == 1 then
      if redis.call('HINCRBY', KEYS[tonumber(c)], owner, 1) == 1 then result = 1 end
    end
  elseif op == 'l' then
    local field = pack(a, b)
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
  reply[#reply + 1] = result == -1 and 'x' or tostring(result)
end
redis.call('HSET', KEYS[6], 'seq', seq, 'reply', table.concat(reply))
return results
