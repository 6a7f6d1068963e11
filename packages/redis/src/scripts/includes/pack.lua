-- The one encoding of two strings in one: "<byte length of a>:<a><b>".
-- Lengths are in bytes (Lua's #), as in TypeScript's pack() in
-- src/encoding.ts, so any UTF-8 content splits back apart. Used for
-- membership fields (connection id, room) and outbox entries.
local function pack(a, b)
  return #a .. ':' .. a .. b
end

local function unpack_pair(packed)
  local length = tonumber(string.match(packed, '^(%d+):'))
  local start = #tostring(length) + 2
  return string.sub(packed, start, start + length - 1), string.sub(packed, start + length)
end
