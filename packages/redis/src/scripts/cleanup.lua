-- Claims a dead process, or removes one bounded chunk of its connections.
-- Called again and again until it answers "done", so that no single call
-- stalls Redis however many connections the process held.
--
-- KEYS[1] the process registry (zset: process id -> lease expiry, ms)
-- KEYS[2] cleanups in progress (hash: process id -> "cursor|claim expiry|cleaner process id")
-- KEYS[3] the users hash (user id -> open connections)
-- KEYS[4] the dead process's connections (paged by slot: includes/slots.lua)
-- KEYS[5] the info hash (user id -> JSON, while online)
-- KEYS[6] the dead process's record (kept a day: a fenced process settles from it)
-- KEYS[7] the cleaner's outbox (list), KEYS[8] the outbox entry id counter
-- KEYS[9] the version counter, KEYS[10] the dead process's outbox, KEYS[11]
-- the name of its pages of slots (includes/slots.lua; not a key itself)
-- ARGV[1] dead process id, ARGV[2] the cleaner's process id, ARGV[3] claim
-- duration in ms, ARGV[4] chunk size (0: only claim), ARGV[5] the mode,
-- ARGV[6] the last outbox entry the cleaner announced, ARGV[7] in the
-- retire modes, the last entry of the dead process's outbox its store announced.
-- Modes: "expired" (only once its lease ran out), "retire" (an older id of
-- the cleaner's own store, or the cleaner itself saying goodbye: removed
-- live or not), "retire-quietly" (as "retire", writing no leaves: after a
-- data loss the recovering processes settle them from their accounts).
--
-- The claim moves the process out of the registry into the cleanups,
-- atomically, and moves its outbox (the leaves it had found as a cleaner and
-- not announced) to the cleaner's, and, when its lease ran out, the
-- transitions of its last batch if it had not announced them (a process
-- saying goodbye takes its own on the call after its claim)
-- (includes/record.lua); a claim whose cleaner went silent can be taken over.
-- Each chunk takes whole pages of the connections (includes/slots.lua), from
-- the stored cursor on, and deletes them. The cursor is only a hint: after a
-- restart or a failover of Redis it may mean nothing, so the cleanup is
-- "done" only once no connection is counted, and a pass that came to the
-- last page with connections left starts again from the first. Each
-- connection is removed once (the script is atomic: a page read is deleted
-- in the same step), and each user it leaves offline goes to the cleaner's
-- outbox, with its version, in the same step. A cleaner writes only while
-- its own lease holds.
--
-- Returns { status, the cleaner's outbox entries... } where status is
-- "claimed", "more", "done", "alive" (the lease was renewed meanwhile),
-- "busy" (another cleaner holds the claim) or "gone" (nothing left to
-- clean); or FENCE_GONE (includes/fences.lua) when the cleaner's own lease
-- does not hold.

--- @include "includes/fences.lua"
--- @include "includes/clock.lua"
--- @include "includes/pack.lua"
--- @include "includes/version.lua"
--- @include "includes/outbox.lua"
--- @include "includes/record.lua"
--- @include "includes/slots.lua"

local pid, cleaner, mode = ARGV[1], ARGV[2], ARGV[5]
local claim_ms, chunk, through, announced = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
if not claim_ms or not chunk or chunk < 0 or not through or not announced or (mode ~= 'expired' and mode ~= 'retire' and mode ~= 'retire-quietly') then
  return redis.error_reply('ERR presence cleanup: malformed arguments')
end
local now = now_ms()
local goodbye = pid == cleaner
if not goodbye then
  local lease = redis.call('ZSCORE', KEYS[1], cleaner)
  if not lease or tonumber(lease) < now then return FENCE_GONE end
end
local quiet = mode == 'retire-quietly'
outbox_trim(KEYS[7], through)

local function reply(status)
  local result = outbox_read(KEYS[7])
  table.insert(result, 1, status)
  return result
end

-- the dead process's own outbox, now the cleaner's to announce
local function take_outbox(already_announced)
  if goodbye then return end
  if quiet then redis.call('DEL', KEYS[10]) else outbox_move(KEYS[10], KEYS[7], KEYS[8], already_announced) end
end

local cursor = '0'
local lease = redis.call('ZSCORE', KEYS[1], pid)
if lease then
  if tonumber(lease) >= now and mode == 'expired' then return reply('alive') end
  redis.call('ZREM', KEYS[1], pid)
  take_outbox(mode == 'expired' and 0 or announced)
  -- a process whose lease ran out may have died before it read its last reply
  if mode == 'expired' and not quiet then record_take(KEYS[6], KEYS[7], KEYS[8]) end
else
  local claim = redis.call('HGET', KEYS[2], pid)
  if not claim then return reply('gone') end
  local claimed_cursor, expiry, owner = string.match(claim, '^([^|]*)|(%d+)|(.*)$')
  if owner ~= cleaner and tonumber(expiry) > now then return reply('busy') end
  -- a process that died saying goodbye held its own leaves
  if owner == pid then
    take_outbox(0)
    record_take(KEYS[6], KEYS[7], KEYS[8])
  end
  cursor = claimed_cursor
end
redis.call('PEXPIRE', KEYS[6], 86400000)
if chunk == 0 then
  redis.call('HSET', KEYS[2], pid, cursor .. '|' .. (now + claim_ms) .. '|' .. cleaner)
  return reply('claimed')
end

-- the step's pages, from the cursor on: whole pages, as many as fit in
-- `chunk` connections (at least one), visiting at most `chunk` pages, all
-- read before any is written (the pages are not in KEYS: a Redis Cluster
-- refuses a key of a slot in migration only when it is touched, so a
-- refusal comes before any write); each page's users, deleted with it;
-- each user's count lowered by its connections at once, and the users this
-- leaves offline removed and written to the outbox, with one call per kind.
-- The cursor is "<page>:<found>", found 1 once the pass found connections.
local pages = tonumber(redis.call('HGET', KEYS[4], 'p'))
if not pages and redis.call('EXISTS', KEYS[4]) == 1 then
  -- the connections of a store of data layout 1 (0.1): never deleted unread
  return redis.error_reply('ERR presence cleanup: the connections of ' .. pid .. ' are of another data layout')
end
pages = pages or 0
local page, found = string.match(cursor, '^(%d+):?(%d*)$')
page, found = page and tonumber(page) or 0, found ~= '0'
if page >= pages then page, found = 0, true end
local taken, removed, visited = {}, 0, 0
while page < pages and visited < chunk do
  local size = redis.call('HLEN', page_key(KEYS[11], page))
  if size > 0 then
    if removed > 0 and removed + size > chunk then break end
    taken[#taken + 1] = page_key(KEYS[11], page)
    removed = removed + size
  end
  page, visited = page + 1, visited + 1
end
local users, order = {}, {}
for _, key in ipairs(taken) do
  for _, user in ipairs(redis.call('HVALS', key)) do
    if not users[user] then order[#order + 1] = user end
    users[user] = (users[user] or 0) + 1
  end
  redis.call('DEL', key)
end
found = found or removed > 0
local offline = {}
for _, user in ipairs(order) do
  if redis.call('HINCRBY', KEYS[3], user, -users[user]) <= 0 then offline[#offline + 1] = user end
end
call_sliced('HDEL', KEYS[3], offline)
call_sliced('HDEL', KEYS[5], offline)
if not quiet and #offline > 0 then outbox_push_leaves(KEYS[7], KEYS[8], next_versions(KEYS[9], #offline), offline) end

-- done once none is counted, or once a whole pass found none (the count went
-- wrong: a page deleted by hand, or evicted); a pass that came to the last
-- page with some left starts again from the first
local left = removed > 0 and redis.call('HINCRBY', KEYS[4], 'n', -removed) or (tonumber(redis.call('HGET', KEYS[4], 'n')) or 0)
local status = 'more'
if left <= 0 or (page >= pages and not found) then
  redis.call('DEL', KEYS[4])
  redis.call('HDEL', KEYS[2], pid)
  status = 'done'
else
  local next_cursor = page < pages and (page .. ':' .. (found and 1 or 0)) or '0:0'
  redis.call('HSET', KEYS[2], pid, next_cursor .. '|' .. (now + claim_ms) .. '|' .. cleaner)
end
return reply(status)
