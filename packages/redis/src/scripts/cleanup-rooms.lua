-- Takes a chunk of a dead process's room memberships out of their rooms.
-- The cleaner picks the chunk (one HSCAN step of the memberships hash) and passes
-- the rooms' keys; each membership is removed at most once (HDEL decides), so
-- concurrent cleaners never double-decrement, and each user who leaves a room
-- goes to the cleaner's outbox, with its version, in the same step.
--
-- KEYS[1] the process registry, KEYS[2] the dead process's memberships
-- (hash: pack(connection id, room) -> user id), KEYS[3] the cleaner's outbox,
-- KEYS[4] the outbox entry id counter, KEYS[5] the version counter, KEYS[6...] rooms.
-- ARGV[1] dead process id, ARGV[2] the cleaner's process id, ARGV[3] the
-- last outbox entry the cleaner announced, ARGV[4] "quiet" to write no
-- leaves (cleanup.lua's "retire-quietly") or "", then pairs: membership
-- field, index of its room's key.
--
-- Returns { status, the cleaner's outbox entries... }; status is "ok", or
-- "alive" when the process is registered (never touch a live process's
-- rooms); or FENCE_GONE when the cleaner's own lease does not hold.

--- @include "includes/fences.lua"
--- @include "includes/clock.lua"
--- @include "includes/pack.lua"
--- @include "includes/version.lua"
--- @include "includes/outbox.lua"

local pid, cleaner, through, quiet = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == 'quiet'
if not through or (#ARGV - 4) % 2 ~= 0 then
  return redis.error_reply('ERR presence cleanup-rooms: malformed arguments')
end
for i = 5, #ARGV, 2 do
  local index = tonumber(ARGV[i + 1])
  if not index or index < 6 or index > #KEYS then
    return redis.error_reply('ERR presence cleanup-rooms: bad room key index')
  end
end
if pid ~= cleaner then
  local lease = redis.call('ZSCORE', KEYS[1], cleaner)
  if not lease or tonumber(lease) < now_ms() then return FENCE_GONE end
end
outbox_trim(KEYS[3], through)
local function reply(status)
  local result = outbox_read(KEYS[3])
  table.insert(result, 1, status)
  return result
end
if redis.call('ZSCORE', KEYS[1], pid) then return reply('alive') end

for i = 5, #ARGV, 2 do
  local field, room_key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  local owner = redis.call('HGET', KEYS[2], field)
  if owner then
    redis.call('HDEL', KEYS[2], field)
    if redis.call('HINCRBY', room_key, owner, -1) <= 0 then
      redis.call('HDEL', room_key, owner)
      if not quiet then
        local _, room = unpack_pair(field)
        outbox_push(KEYS[3], KEYS[4], next_version(KEYS[5]), room, owner)
      end
    end
  end
end
return reply('ok')
