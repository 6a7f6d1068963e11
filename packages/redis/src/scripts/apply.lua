-- Applies batch number ARGV[3] of one process's operations, atomically, and
-- records it: the process's record keeps the number of the last batch
-- applied and its results, so that a batch whose reply was lost is sent
-- again unchanged and answered from the record, never applied twice.
--
-- KEYS[1] the process registry (zset: process id -> lease expiry, ms)
-- KEYS[2] the users hash (user id -> open connections, all processes)
-- KEYS[3] this process's connections (paged by slot: includes/slots.lua)
-- KEYS[4] this process's room memberships (hash: pack(slot, room) -> user id)
-- KEYS[5] the info hash (user id -> JSON, while online)
-- KEYS[6] this process's record (hash: seq, reply, i<n>: the info of join n, t: the
--         transitions decided, until announced; see includes/record.lua)
-- KEYS[7] the version counter (see includes/version.lua)
-- KEYS[8] the name of this process's pages of slots (includes/slots.lua; not a key itself)
-- KEYS[9...] the rooms the batch touches (hash: user id -> connections in the room)
-- ARGV[1] process id, ARGV[2] lease in ms, ARGV[3] batch number (1, 2, ...),
-- then five arguments per operation (the letters are src/encoding.ts's OPERATION_LETTERS):
--   "c", connection id, slot, user id, info JSON or ""   connect (sets the info, also on a repeat)
--   "r", connection id, slot, user id, info JSON or ""   republish a connection (sets the info only if the user has none)
--   "d", connection id, slot, user id, ""                disconnect (its rooms are left by "l" operations first)
--   "j", connection id, slot, room, index of its key     join a room
--   "l", connection id, slot, room, index of its key     leave a room
--   "u", "", user id, info JSON, ""                      update an online user's info
-- A slot names one of the process's open connections in Redis (src/slots.ts);
-- the connection id itself is never stored: it is there for whoever reads
-- the command (MONITOR, a proxy in the tests).
--
-- Returns one result per operation: 0 when nothing changed state, -1 when
-- the slot already belongs to another user, and for a transition
-- (offline -> online, online -> offline, entered or left the room, info
-- updated) its version; a join that was a transition gives
-- { version, the user's info JSON } when the user has info. The same batch
-- number again returns the recorded results and changes nothing, also once
-- the process was fenced (the record outlives it by a day). Otherwise a
-- fenced process gets a code from includes/fences.lua, and nothing applied.
-- When a cleaner took the batch's transitions to announce them (its
-- process died, or seemed to, before it read the reply: see
-- includes/record.lua), the recorded results end with "taken": the process
-- delivers them to its callers without announcing them again.

--- @include "includes/fences.lua"
--- @include "includes/pack.lua"
--- @include "includes/version.lua"
--- @include "includes/record.lua"
--- @include "includes/slots.lua"

local pid = ARGV[1]
local lease, seq = tonumber(ARGV[2]), tonumber(ARGV[3])
if not lease or not seq or (#ARGV - 3) % 5 ~= 0 then
  return redis.error_reply('ERR presence apply: malformed arguments')
end
for i = 4, #ARGV, 5 do
  local op = ARGV[i]
  if op ~= 'u' and not is_slot(ARGV[i + 2]) then
    return redis.error_reply('ERR presence apply: bad slot')
  end
  if op == 'j' or op == 'l' then
    local index = tonumber(ARGV[i + 4])
    if not index or index < 9 or index > #KEYS then
      return redis.error_reply('ERR presence apply: bad room key index')
    end
  elseif op ~= 'c' and op ~= 'r' and op ~= 'd' and op ~= 'u' then
    return redis.error_reply('ERR presence apply: unknown operation')
  end
end

local record_key = KEYS[6]
local applied = tonumber(redis.call('HGET', record_key, 'seq'))
if applied == seq then
  -- this batch ran and its reply was lost: answer from the record
  local fields = redis.call('HGETALL', record_key)
  local reply, infos, taken = '', {}, false
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name == 'reply' then
      reply = fields[i + 1]
    elseif name == 'taken' then
      taken = true
    elseif string.sub(name, 1, 1) == 'i' then
      infos[tonumber(string.sub(name, 2))] = fields[i + 1]
    end
  end
  local results = {}
  for token in string.gmatch(reply, '[^,]+') do results[#results + 1] = tonumber(token) end
  for index, json in pairs(infos) do results[index] = { results[index], json } end
  if taken then results[#results + 1] = 'taken' end
  return results
end
if not redis.call('ZSCORE', KEYS[1], pid) then return FENCE_GONE end
if applied ~= seq - 1 then return FENCE_BEHIND end

-- every page the batch names, touched once before anything is written: the
-- pages are not in KEYS, and a Redis Cluster refuses a key of a slot in
-- migration only when it is touched, so a refusal comes before any write
local touched = {}
for i = 4, #ARGV, 5 do
  if ARGV[i] ~= 'u' and ARGV[i] ~= 'l' then
    local page_key = slot_address(KEYS[8], ARGV[i + 2])
    if not touched[page_key] then
      touched[page_key] = true
      redis.call('EXISTS', page_key)
    end
  end
end

-- a write proves the process is alive: extend its lease
redis.call('ZADD', KEYS[1], 'XX', 'GT', now_ms() + lease, pid)

local users, connections, memberships, info, versions = KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[7]
local results, tokens, join_infos, decided = {}, {}, {}, {}
-- the connections counted (+/-) and the pages written, for the connections key
local counted, pages = 0, 0
for i = 4, #ARGV, 5 do
  local op, a, b, c = ARGV[i], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local result = 0
  if op == 'c' or op == 'r' then
    local page_key, field, page = slot_address(KEYS[8], a)
    local owner = redis.call('HGET', page_key, field)
    if owner and owner ~= b then
      result = -1
    else
      if not owner then
        redis.call('HSET', page_key, field, b)
        counted, pages = counted + 1, math.max(pages, page + 1)
        if redis.call('HINCRBY', users, b, 1) == 1 then
          result = next_version(versions)
          record_connected(decided, result, b, c)
        end
      end
      if c ~= '' then
        if op == 'c' then redis.call('HSET', info, b, c) else redis.call('HSETNX', info, b, c) end
      end
    end
  elseif op == 'd' then
    local page_key, field = slot_address(KEYS[8], a)
    if redis.call('HGET', page_key, field) == b then
      redis.call('HDEL', page_key, field)
      counted = counted - 1
      if redis.call('HINCRBY', users, b, -1) <= 0 then
        redis.call('HDEL', users, b)
        redis.call('HDEL', info, b)
        result = next_version(versions)
        record_left(decided, result, '', b)
      end
    end
  elseif op == 'j' then
    local page_key, field = slot_address(KEYS[8], a)
    local owner = redis.call('HGET', page_key, field)
    if owner and redis.call('HSETNX', memberships, pack(a, b), owner) == 1 then
      if redis.call('HINCRBY', KEYS[tonumber(c)], owner, 1) == 1 then
        result = next_version(versions)
        local json = redis.call('HGET', info, owner)
        if json then join_infos[#results + 1] = json end
        record_joined(decided, result, b, owner, json or '')
      end
    end
  elseif op == 'l' then
    local field = pack(a, b)
    local owner = redis.call('HGET', memberships, field)
    if owner then
      redis.call('HDEL', memberships, field)
      if redis.call('HINCRBY', KEYS[tonumber(c)], owner, -1) <= 0 then
        redis.call('HDEL', KEYS[tonumber(c)], owner)
        result = next_version(versions)
        record_left(decided, result, b, owner)
      end
    end
  else -- 'u'
    if redis.call('HEXISTS', users, a) == 1 then
      redis.call('HSET', info, a, b)
      result = next_version(versions)
      record_updated(decided, result, a, b)
    end
  end
  results[#results + 1] = result
  tokens[#tokens + 1] = integer_string(result)
end

if counted ~= 0 then redis.call('HINCRBY', connections, 'n', counted) end
if pages > 0 and pages > (tonumber(redis.call('HGET', connections, 'p')) or 0) then redis.call('HSET', connections, 'p', pages) end

redis.call('DEL', record_key)
redis.call('HSET', record_key, 'seq', seq, 'reply', table.concat(tokens, ','))
if #decided > 0 then redis.call('HSET', record_key, 't', table.concat(decided)) end
for index, json in pairs(join_infos) do
  redis.call('HSET', record_key, 'i' .. index, json)
  results[index] = { results[index], json }
end
return results
