--- @include "includes/clock.lua"
--- @include "includes/pack.lua"
-- A cleaner's outbox (one list per process id): the leaves its cleanups
-- found, written in the same script that made them, so that a lost reply
-- loses none. Entries are "<id>|<version>|" .. pack(room, user) (room ""
-- for "user went offline"); ids come from one counter and only grow. The
-- cleaner announces the entries above the last id it announced, and its
-- next call passes that id so that the entries up to it are dropped. The
-- outbox of a process that died is moved to its cleaner's (outbox_move).
local function outbox_trim(outbox_key, through)
  while true do
    local head = redis.call('LINDEX', outbox_key, 0)
    if not head or tonumber(string.match(head, '^(%d+)|')) > through then return end
    redis.call('LPOP', outbox_key)
  end
end

local function outbox_push(outbox_key, ids_key, version, room, user)
  local id = redis.call('INCR', ids_key)
  redis.call('RPUSH', outbox_key, integer_string(id) .. '|' .. integer_string(version) .. '|' .. pack(room, user))
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
