-- Takes a tab slot for a connection that just opened: the newest connection
-- always gets one, and when the user holds more than the cap, the oldest
-- lose theirs.
--
-- KEYS[1]  the user's slots: a sorted set, connection id -> its order of arrival
-- ARGV[1]  the connection id
-- ARGV[2]  the cap: open connections the user may hold (>= 1)
-- ARGV[3]  how long the slots live after the user's last new connection, ms (>= 1)
--
-- Returns the connection ids that lost their slot, oldest first (empty when
-- none did, or when this connection already held one).

local cap = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
if not cap or cap < 1 or not ttl or ttl < 1 then
  return redis.error_reply("ERR open-tab: the cap and the ttl must be integers >= 1")
end

-- a repeated open changes nothing
if redis.call("ZSCORE", KEYS[1], ARGV[1]) then
  redis.call("PEXPIRE", KEYS[1], ttl)
  return {}
end

-- the order comes from the set itself, never from a clock
local newest = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
local order = 1
if newest[2] then order = tonumber(newest[2]) + 1 end
redis.call("ZADD", KEYS[1], order, ARGV[1])

local evicted = {}
local excess = redis.call("ZCARD", KEYS[1]) - cap
if excess > 0 then
  evicted = redis.call("ZRANGE", KEYS[1], 0, excess - 1)
  redis.call("ZREMRANGEBYRANK", KEYS[1], 0, excess - 1)
end
redis.call("PEXPIRE", KEYS[1], ttl)
return evicted
