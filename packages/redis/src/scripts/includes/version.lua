--- @include "includes/clock.lua"
-- The deployment's version counter (one string key under the hash tag):
-- every transition a script decides takes its next value, so of two
-- transitions of one user (or one user in one room) the higher version was
-- decided later. Redis is the decider; no process's clock takes part. A
-- missing counter (a new deployment, Redis restarted empty) is seeded from
-- Redis's TIME in microseconds, and the counter never falls below it (a
-- restore from an older snapshot), so versions keep growing across a data
-- loss as long as fewer than a million are given per second on average.
-- Versions stay below 2^53 (exact in Lua and JavaScript) until 2255.
-- (The counter is read once per script run, then counted on in Lua.)
local version_last = nil
local function next_version(version_key)
  if not version_last then
    version_last = math.max(tonumber(redis.call('GET', version_key)) or 0, now_us())
  end
  version_last = version_last + 1
  redis.call('SET', version_key, integer_string(version_last))
  return version_last
end
