-- Renews (or, with ARGV[3] = "register", creates) a process's lease, and
-- lists the processes whose lease ran out and the cleanups whose claim did.
--
-- KEYS[1] the process registry (zset: process id -> lease expiry, ms)
-- KEYS[2] cleanups in progress (hash: process id -> "cursor|claim expiry|cleaner process id")
-- KEYS[3] this process's record (hash: seq -> last batch applied, reply -> its results)
-- KEYS[4] this process's outbox (list), trimmed up to ARGV[6]
-- ARGV[1] process id, ARGV[2] lease in ms, ARGV[3] "register" or "renew",
-- ARGV[4] how many dead processes to list at most, ARGV[5] the last batch
-- the process saw applied (and announced: includes/record.lua), ARGV[6] the
-- last outbox entry it announced.
--
-- Returns { ids of processes to clean up, outbox entries not yet announced }
-- (a cleanup whose last reply was lost is announced from there). A renewal
-- of a process that is fenced returns a code from includes/fences.lua:
-- FENCE_GONE when it is no longer registered (declared dead, or Redis lost
-- its data), FENCE_BEHIND when Redis's record of it is older than what it
-- saw applied (a restore from an older snapshot, a lagging replica).

--- @include "includes/fences.lua"
--- @include "includes/clock.lua"
--- @include "includes/outbox.lua"
--- @include "includes/record.lua"

local pid = ARGV[1]
local lease, limit, acked, through = tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if not lease or not limit or not acked or not through or (ARGV[3] ~= 'register' and ARGV[3] ~= 'renew') then
  return redis.error_reply('ERR presence heartbeat: malformed arguments')
end

local now = now_ms()
if ARGV[3] == 'register' then
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'seq', 0)
else
  if not redis.call('ZSCORE', KEYS[1], pid) then return FENCE_GONE end
  local seq = tonumber(redis.call('HGET', KEYS[3], 'seq'))
  if not seq or seq < acked then return FENCE_BEHIND end
  record_announced(KEYS[3], acked)
end
redis.call('ZADD', KEYS[1], now + lease, pid)
outbox_trim(KEYS[4], through)

local dead = redis.call('ZRANGE', KEYS[1], '-inf', '(' .. now, 'BYSCORE', 'LIMIT', 0, limit)
if #dead < limit then
  local claims = redis.call('HGETALL', KEYS[2])
  for i = 1, #claims, 2 do
    local expiry = tonumber(string.match(claims[i + 1], '^[^|]*|(%d+)|'))
    if expiry and expiry <= now and #dead < limit then dead[#dead + 1] = claims[i] end
  end
end
return { dead, outbox_read(KEYS[4]) }
