--- @include "includes/clock.lua"
--- @include "includes/pack.lua"
-- A cleaner's outbox (one list per process id): the leaves its cleanups
-- found, written in the same script that made them, so that a lost reply
-- loses none. Entries are "<id>|<version>|" .. pack(room, user) (room ""
-- for "user went offline"), or a run of users gone offline
-- (outbox_push_leaves); ids come from one counter and only grow. The
-- cleaner announces the entries above the last id it announced, and its
-- next call passes that id so that the entries up to it are dropped. The
-- outbox of a process that died is moved to its cleaner's (outbox_move).
local function outbox_id(outbox_key, index)
  return tonumber(string.match(redis.call('LINDEX', outbox_key, index), '^(%d+)|'))
end

-- Drops the entries up to `through`: ids grow along the list, so the first
-- one above it is found by bisection, and the rest kept with one LTRIM.
local function outbox_trim(outbox_key, through)
  local length = redis.call('LLEN', outbox_key)
  if length == 0 or outbox_id(outbox_key, 0) > through then return end
  local lo, hi = 1, length -- the first index above `through` is in [lo, hi]
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if outbox_id(outbox_key, mid) > through then hi = mid else lo = mid + 1 end
  end
  if lo == length then redis.call('DEL', outbox_key) else redis.call('LTRIM', outbox_key, lo, -1) end
end

local function outbox_push(outbox_key, ids_key, version, room, user)
  local id = redis.call('INCR', ids_key)
  redis.call('RPUSH', outbox_key, integer_string(id) .. '|' .. integer_string(version) .. '|' .. pack(room, user))
end

-- Calls `command key args...` over `values` in slices (Lua's unpack has a
-- stack limit, and a chunk size is the user's choice).
local function call_sliced(command, key, values)
  for from = 1, #values, 1000 do
    redis.call(command, key, unpack(values, from, math.min(#values, from + 999)))
  end
end

-- "users went offline", all of `users` in one entry under one id, versions
-- `first_version`, `first_version + 1`, ... in order:
-- "<id>|<first version>|o" .. pack(user, '') for each user. One string
-- built with one table.concat, where an entry per user cost a formatted id,
-- version and concatenation each (src/encoding.ts reads both forms).
local function outbox_push_leaves(outbox_key, ids_key, first_version, users)
  if #users == 0 then return end
  local parts = { integer_string(redis.call('INCR', ids_key)), '|', integer_string(first_version), '|o' }
  for _, user in ipairs(users) do
    parts[#parts + 1] = #user .. ':'
    parts[#parts + 1] = user
  end
  redis.call('RPUSH', outbox_key, table.concat(parts))
end

-- Moves every entry of a dead process's outbox above `announced` (what it
-- had announced itself, when known) to the end of the cleaner's, under new
-- ids: same leaves, same versions, announced by the cleaner.
local function outbox_move(from_key, to_key, ids_key, announced)
  while true do
    local entry = redis.call('LPOP', from_key)
    if not entry then return end
    local id, rest = string.match(entry, '^(%d+)|(.*)$')
    if tonumber(id) > announced then
      redis.call('RPUSH', to_key, integer_string(redis.call('INCR', ids_key)) .. '|' .. rest)
    end
  end
end

local function outbox_read(outbox_key)
  redis.call('PEXPIRE', outbox_key, 86400000)
  return redis.call('LRANGE', outbox_key, 0, -1)
end
