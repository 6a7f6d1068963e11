-- A cleaner's outbox: the leaves a cleanup found, recorded in the same
-- script that made them, so that a lost reply loses none. Entries are
-- "<id>|" .. pack(room, user) (room "" for "user went offline"); the cleaner
-- announces the entries above what it announced before, and the next call
-- passes that id so that the entries up to it are dropped.
-- outbox_key: the list; ids_key: the deployment's entry id counter.
local function outbox_trim(outbox_key, through)
  while true do
    local head = redis.call('LINDEX', outbox_key, 0)
    if not head or tonumber(string.match(head, '^(%d+)|')) > through then return end
    redis.call('LPOP', outbox_key)
  end
end

local function outbox_push(outbox_key, ids_key, room, user)
  local id = redis.call('INCR', ids_key)
  redis.call('RPUSH', outbox_key, id .. '|' .. pack(room, user))
end

local function outbox_read(outbox_key)
  redis.call('PEXPIRE', outbox_key, 86400000)
  return redis.call('LRANGE', outbox_key, 0, -1)
end
