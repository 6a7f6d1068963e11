-- Users' presence with the version it is read as of, in one step: every
-- transition versioned at most that is in the read, and every later one
-- gets a higher version (the counter never falls below Redis's clock, see
-- includes/version.lua). Read-only.
--
-- KEYS[1] the users hash, KEYS[2] the info hash, KEYS[3] the version counter.
-- ARGV the user ids. Returns { version, then per user: 1 or 0, and the info
-- JSON or false }.

--- @include "includes/clock.lua"

local version = math.max(tonumber(redis.call('GET', KEYS[3])) or 0, now_us())
local reply = { integer_string(version) }
for i = 1, #ARGV do
  local online = redis.call('HEXISTS', KEYS[1], ARGV[i])
  reply[#reply + 1] = online
  reply[#reply + 1] = online == 1 and redis.call('HGET', KEYS[2], ARGV[i]) or false
end
return reply
