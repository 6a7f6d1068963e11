-- Removes one bounded chunk of a dead process's connections. Called again and
-- again until it answers "done", so that no single call stalls Redis however
-- many connections the process held.
--
-- KEYS[1] the process registry (zset: process id -> lease expiry, ms)
-- KEYS[2] cleanups in progress (hash: process id -> "cursor|claim expiry|cleaner id")
-- KEYS[3] the users hash (user id -> open connections)
-- KEYS[4] the dead process's connections (hash: connection id -> user id)
-- KEYS[5] the info hash (user id -> JSON, while online)
-- ARGV[1] dead process id, ARGV[2] cleaner id, ARGV[3] claim duration in ms,
-- ARGV[4] chunk size (0: only claim), ARGV[5] "force" to remove a live process
-- (its own goodbye).
--
-- The cleaner takes the process's rooms out (cleanup-rooms.lua) between the
-- claim and the first chunk of connections.
--
-- The first call claims the process atomically (out of the registry, into
-- the cleanups); a claim whose cleaner went silent can be taken over, and the
-- cursor lets the next cleaner carry on. Every connection is removed exactly
-- once, so the users it leaves offline are returned exactly once.
--
-- Returns { status, user ids left offline... } where status is "more", "done",
-- "alive" (the lease was renewed meanwhile), "busy" (another cleaner holds
-- the claim) or "gone" (nothing left to clean).

local pid, cleaner = ARGV[1], ARGV[2]
local claim_ms, chunk = tonumber(ARGV[3]), tonumber(ARGV[4])
if not claim_ms or not chunk or chunk < 0 then
  return redis.error_reply('ERR presence cleanup: malformed arguments')
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local cursor = '0'
local lease = redis.call('ZSCORE', KEYS[1], pid)
if lease then
  if tonumber(lease) >= now and ARGV[5] ~= 'force' then return { 'alive' } end
  redis.call('ZREM', KEYS[1], pid)
else
  local claim = redis.call('HGET', KEYS[2], pid)
  if not claim then return { 'gone' } end
  local claimed_cursor, expiry, owner = string.match(claim, '^([^|]*)|(%d+)|(.*)$')
  if owner ~= cleaner and tonumber(expiry) > now then return { 'busy' } end
  cursor = claimed_cursor
end

if chunk == 0 then
  redis.call('HSET', KEYS[2], pid, cursor .. '|' .. (now + claim_ms) .. '|' .. cleaner)
  return { 'claimed' }
end

local result = { 'more' }
local scan = redis.call('HSCAN', KEYS[4], cursor, 'COUNT', chunk)
local entries = scan[2]
for i = 1, #entries, 2 do
  local user = entries[i + 1]
  redis.call('HDEL', KEYS[4], entries[i])
  local count = redis.call('HINCRBY', KEYS[3], user, -1)
  if count <= 0 then
    redis.call('HDEL', KEYS[3], user)
    redis.call('HDEL', KEYS[5], user)
    result[#result + 1] = user
  end
end

if scan[1] == '0' then
  redis.call('DEL', KEYS[4])
  redis.call('HDEL', KEYS[2], pid)
  result[1] = 'done'
else
  redis.call('HSET', KEYS[2], pid, scan[1] .. '|' .. (now + claim_ms) .. '|' .. cleaner)
end
return result
