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

-- The next `n` versions (1 if not given), written back once: returns the first.
local function next_versions(version_key, n)
  if not version_last then
    version_last = math.max(tonumber(redis.call('GET', version_key)) or 0, now_us())
  end
  local first = version_last + 1
  version_last = version_last + (n or 1)
  redis.call('SET', version_key, integer_string(version_last))
  return first
end

local function next_version(version_key)
  return next_versions(version_key, 1)
end
