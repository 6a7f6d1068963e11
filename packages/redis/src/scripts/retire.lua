-- A goodbye with a leave grace: hands this process's connections to the
-- survivors' cleanup after a grace instead of removing them at once, so that
-- a user who is back on another process within it is never announced leaving
-- (a rolling deploy is silent). Only when another process holds a live
-- lease: the last one cleans itself.
--
-- KEYS[1] the process registry (zset: process id -> lease expiry, ms)
-- ARGV[1] process id, ARGV[2] the grace in ms
--
-- Returns 1 when the lease now ends after the grace (the survivors clean up
-- then, announcing once what is left), 0 when no other process is alive (or
-- this one is no longer registered): the caller cleans itself.

--- @include "includes/clock.lua"

local pid, grace = ARGV[1], tonumber(ARGV[2])
if not grace or grace < 0 then
  return redis.error_reply('ERR presence retire: malformed arguments')
end
local now = now_ms()
if not redis.call('ZSCORE', KEYS[1], pid) then return 0 end
local alive = redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE', 'LIMIT', 0, 2)
local others = 0
for _, id in ipairs(alive) do
  if id ~= pid then others = others + 1 end
end
if others == 0 then return 0 end
redis.call('ZADD', KEYS[1], now + grace, pid)
return 1
