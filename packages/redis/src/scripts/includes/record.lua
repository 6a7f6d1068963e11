--- @include "includes/clock.lua"
--- @include "includes/pack.lua"
-- The transitions of a process's last batch, kept in its record (field "t")
-- until the process has announced them, so that a process that dies between
-- Redis applying its batch and reading the reply loses none: the cleaner
-- that claims it moves them to its own outbox (record_take) and announces
-- them, before the leaves its cleanup decides. The process says it has
-- announced a batch by sending the next one (apply.lua replaces the
-- record), or, when none follows at once, with ack.lua; the heartbeat says
-- it too. A record a cleaner took is marked "taken": the process, if it
-- comes back to settle the batch, announces nothing again.
--
-- Each entry is "<version>|<payload>", and "t" is the entries one after the
-- other, each as pack(entry, ''). The payloads are the outbox's
-- (includes/outbox.lua, src/encoding.ts): pack(room or '', user) for a left
-- room or a user gone offline; 'c' .. pack(user, info) for a user online,
-- 'u' .. pack(user, info) for an update, 'j' .. pack(room, pack(user, info))
-- for a room entered (info '' for none).
local function record_entry(decided, version, payload)
  local entry = integer_string(version) .. '|' .. payload
  decided[#decided + 1] = pack(entry, '')
end

local function record_connected(decided, version, user, info)
  record_entry(decided, version, 'c' .. pack(user, info))
end

local function record_updated(decided, version, user, info)
  record_entry(decided, version, 'u' .. pack(user, info))
end

local function record_joined(decided, version, room, user, info)
  record_entry(decided, version, 'j' .. pack(room, pack(user, info)))
end

local function record_left(decided, version, room, user)
  record_entry(decided, version, pack(room, user))
end

-- Moves the transitions of a dead process's last batch, if it had not
-- announced them, to the end of the cleaner's outbox under new ids, and
-- marks the record taken.
local function record_take(record_key, outbox_key, ids_key)
  local decided = redis.call('HGET', record_key, 't')
  if not decided then return end
  local at = 1
  while at <= #decided do
    local length = tonumber(string.match(decided, '^(%d+):', at))
    local start = at + #tostring(length) + 1
    local id = redis.call('INCR', ids_key)
    redis.call('RPUSH', outbox_key, integer_string(id) .. '|' .. string.sub(decided, start, start + length - 1))
    at = start + length
  end
  redis.call('HDEL', record_key, 't')
  redis.call('HSET', record_key, 'taken', 1)
end

-- The process announced batch `seq`: its transitions need no cleaner.
local function record_announced(record_key, seq)
  if tonumber(redis.call('HGET', record_key, 'seq')) == seq then redis.call('HDEL', record_key, 't') end
end
