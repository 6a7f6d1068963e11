-- After a data loss, the known hash: who was announced online before it, as
-- the recovering processes had counted (fields: src/encoding.ts's
-- knownField). A field is "1" while undecided, then "<decider>|<version>"
-- once its leave is decided.
--
-- KEYS[1] the known hash.
-- ARGV[1] "mark", ARGV[2] its lifetime in ms, then fields: each field not
--   there yet is marked "1" (a decided one stays decided). Returns 0.
-- ARGV[1] "leave", ARGV[2] the field, ARGV[3] the user id, ARGV[4] the
--   deciding store's id; KEYS[2] the users hash or the room's hash, KEYS[3]
--   the version counter. Decides the leave of a user (or room member) that
--   nobody brought back: returns its version to the one store that decides
--   it (again to that store when it asks again, its reply lost), 0 to
--   everyone else and when the user is back.

--- @include "includes/version.lua"

if ARGV[1] == 'mark' then
  local ttl = tonumber(ARGV[2])
  if not ttl then return redis.error_reply('ERR presence known: malformed arguments') end
  for i = 3, #ARGV do redis.call('HSETNX', KEYS[1], ARGV[i], '1') end
  if #ARGV > 2 then redis.call('PEXPIRE', KEYS[1], ttl) end
  return 0
end
if ARGV[1] ~= 'leave' or #KEYS ~= 3 or #ARGV ~= 4 then
  return redis.error_reply('ERR presence known: malformed arguments')
end
local value = redis.call('HGET', KEYS[1], ARGV[2])
if not value then return 0 end
if value ~= '1' then
  local decider, version = string.match(value, '^(.*)|(%d+)$')
  if decider == ARGV[4] then return tonumber(version) end
  return 0
end
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then return 0 end
local version = next_version(KEYS[3])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4] .. '|' .. integer_string(version))
return version
