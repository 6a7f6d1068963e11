-- Redis's own clock: every lease and claim is measured on it (ms), and the
-- version counter never falls below it (microseconds).
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function now_us()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000000 + tonumber(time[2])
end

-- An integer as Redis and TypeScript read it back: Lua's tostring() would
-- print 1.7331123451235e+15 for a version.
local function integer_string(n)
  return string.format('%.0f', n)
end
