-- Takes a chunk of a dead process's room memberships out of their rooms.
-- The cleaner lists the chunk (HSCAN of the memberships hash) and passes the
-- rooms' keys; each membership is removed at most once (HDEL decides), so
-- concurrent cleaners never double-decrement and each user who leaves a room
-- is returned exactly once.
--
-- KEYS[1] the process registry, KEYS[2] the dead process's memberships
-- (hash: "<#connection id>:<connection id><room>" -> user id), KEYS[3...] rooms.
-- ARGV[1] dead process id, then pairs: membership field, index of its room's key.
--
-- Returns { status, room, user, room, user, ... } for the users who left a
-- room; status is "ok", or "alive" when the process is registered (never
-- touch a live process's rooms).

local pid = ARGV[1]
if (#ARGV - 1) % 2 ~= 0 then
  return redis.error_reply('ERR presence cleanup-rooms: malformed arguments')
end
for i = 2, #ARGV, 2 do
  local index = tonumber(ARGV[i + 1])
  if not index or index < 3 or index > #KEYS then
    return redis.error_reply('ERR presence cleanup-rooms: bad room key index')
  end
end
if redis.call('ZSCORE', KEYS[1], pid) then return { 'alive' } end

local result = { 'ok' }
for i = 2, #ARGV, 2 do
  local field, room_key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  local owner = redis.call('HGET', KEYS[2], field)
  if owner then
    redis.call('HDEL', KEYS[2], field)
    if redis.call('HINCRBY', room_key, owner, -1) <= 0 then
      redis.call('HDEL', room_key, owner)
      local length = tonumber(string.match(field, '^(%d+):'))
      local prefix = #tostring(length) + 1
      result[#result + 1] = string.sub(field, prefix + length + 1)
      result[#result + 1] = owner
    end
  end
end
return result
