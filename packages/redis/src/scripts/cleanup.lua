-- Claims a dead process, or removes one bounded chunk of its connections.
-- Called again and again until it answers "done", so that no single call
-- stalls Redis however many connections the process held.
--
-- KEYS[1] the process registry (zset: process id -> lease expiry, ms)
-- KEYS[2] cleanups in progress (hash: process id -> "cursor|claim expiry|cleaner id")
-- KEYS[3] the users hash (user id -> open connections)
-- KEYS[4] the dead process's connections (hash: connection id -> user id)
-- KEYS[5] the info hash (user id -> JSON, while online)
-- KEYS[6] the dead process's record (kept a day: a fenced process reads it)
-- KEYS[7] the cleaner's outbox (list), KEYS[8] the outbox entry id counter
-- ARGV[1] dead process id, ARGV[2] cleaner id, ARGV[3] claim duration in ms,
-- ARGV[4] chunk size (0: only claim), ARGV[5] "force" to remove a live
-- process (its own goodbye, or an old epoch of the cleaner), ARGV[6] the last
-- outbox entry the cleaner announced.
--
-- The claim moves the process out of the registry into the cleanups,
-- atomically; a claim whose cleaner went silent can be taken over. Each chunk
-- takes the connections one HSCAN step returns and deletes them. The stored
-- cursor is only a hint: after a restart or a failover of Redis it may mean
-- nothing, so the cleanup is "done" only once the hash is empty, and a scan
-- that came round to 0 with connections left starts again from 0. Each
-- connection is removed once (HDEL decides), and each user it leaves offline
-- goes to the cleaner's outbox in the same step.
--
-- Returns { status, outbox entries... } where status is "claimed", "more",
-- "done", "alive" (the lease was renewed meanwhile), "busy" (another cleaner
-- holds the claim) or "gone" (nothing left to clean).

--- @include "includes/clock.lua"
--- @include "includes/pack.lua"
--- @include "includes/outbox.lua"

local pid, cleaner = ARGV[1], ARGV[2]
local claim_ms, chunk, through = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6])
if not claim_ms or not chunk or chunk < 0 or not through then
  return redis.error_reply('ERR presence cleanup: malformed arguments')
end
outbox_trim(KEYS[7], through)

local now = now_ms()
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
redis.call('PEXPIRE', KEYS[6], 86400000)
if chunk == 0 then
  redis.call('HSET', KEYS[2], pid, cursor .. '|' .. (now + claim_ms) .. '|' .. cleaner)
  return { 'claimed' }
end

local scan = redis.call('HSCAN', KEYS[4], cursor, 'COUNT', chunk)
local entries = scan[2]
for i = 1, #entries, 2 do
  local user = entries[i + 1]
  if redis.call('HDEL', KEYS[4], entries[i]) == 1 then
    if redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then
      redis.call('HDEL', KEYS[3], user)
      redis.call('HDEL', KEYS[5], user)
      outbox_push(KEYS[7], KEYS[8], '', user)
    end
  end
end

local status = 'more'
if redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('HDEL', KEYS[2], pid)
  status = 'done'
else
  redis.call('HSET', KEYS[2], pid, scan[1] .. '|' .. (now + claim_ms) .. '|' .. cleaner)
end
local result = outbox_read(KEYS[7])
table.insert(result, 1, status)
return result
