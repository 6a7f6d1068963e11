-- Renews (or, with ARGV[3] = "register", creates) a process's lease, and
-- lists the processes whose lease ran out and the cleanups whose claim did.
--
-- KEYS[1] the process registry (zset: process id -> lease expiry, ms)
-- KEYS[2] cleanups in progress (hash: process id -> "cursor|claim expiry|cleaner id")
-- ARGV[1] process id, ARGV[2] lease in ms, ARGV[3] "register" or "renew",
-- ARGV[4] how many dead processes to list at most.
--
-- Returns the ids of processes to clean up. Fails with FENCED when renewing
-- a process that is no longer registered (declared dead, or Redis lost its data).

local pid = ARGV[1]
local lease = tonumber(ARGV[2])
local limit = tonumber(ARGV[4])
if not lease or not limit or (ARGV[3] ~= 'register' and ARGV[3] ~= 'renew') then
  return redis.error_reply('ERR presence heartbeat: malformed arguments')
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

if ARGV[3] == 'renew' and not redis.call('ZSCORE', KEYS[1], pid) then
  return redis.error_reply('FENCED process ' .. pid .. ' is not registered')
end
redis.call('ZADD', KEYS[1], now + lease, pid)

local dead = redis.call('ZRANGE', KEYS[1], '-inf', '(' .. now, 'BYSCORE', 'LIMIT', 0, limit)
if #dead < limit then
  local claims = redis.call('HGETALL', KEYS[2])
  for i = 1, #claims, 2 do
    local expiry = tonumber(string.match(claims[i + 1], '^[^|]*|(%d+)|'))
    if expiry and expiry <= now and #dead < limit then dead[#dead + 1] = claims[i] end
  end
end
return dead
