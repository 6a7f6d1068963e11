-- Applies a batch of connects and disconnects of one process, atomically.
--
-- KEYS[1] the process registry (zset: process id -> lease expiry, ms)
-- KEYS[2] the users hash (user id -> open connections, all processes)
-- KEYS[3] this process's connections (hash: connection id -> user id)
-- ARGV[1] process id, ARGV[2] lease in ms,
-- then one triple per operation: "c" or "d", connection id, user id ("" for "d").
--
-- Returns one integer per operation: 1 when the user went offline -> online
-- (connect) or online -> offline (disconnect), 0 when nothing changed state,
-- -1 when the connection already belongs to another user. Repeating an
-- operation changes nothing, so a retry can never count twice.
-- Fails with FENCED, applying nothing, once the process has been declared dead.

local pid = ARGV[1]
local lease = tonumber(ARGV[2])
if not lease or (#ARGV - 2) % 3 ~= 0 then
  return redis.error_reply('ERR presence apply: malformed arguments')
end
for i = 3, #ARGV, 3 do
  if ARGV[i] ~= 'c' and ARGV[i] ~= 'd' then
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

local results = {}
for i = 3, #ARGV, 3 do
  local connection, user = ARGV[i + 1], ARGV[i + 2]
  if ARGV[i] == 'c' then
    if redis.call('HSETNX', KEYS[3], connection, user) == 1 then
      results[#results + 1] = redis.call('HINCRBY', KEYS[2], user, 1) == 1 and 1 or 0
    elseif redis.call('HGET', KEYS[3], connection) == user then
      results[#results + 1] = 0
    else
      results[#results + 1] = -1
    end
  else
    local owner = redis.call('HGET', KEYS[3], connection)
    if owner then
      redis.call('HDEL', KEYS[3], connection)
      local count = redis.call('HINCRBY', KEYS[2], owner, -1)
      if count <= 0 then
        redis.call('HDEL', KEYS[2], owner)
        results[#results + 1] = 1
      else
        results[#results + 1] = 0
      end
    else
      results[#results + 1] = 0
    end
  end
end
return results
