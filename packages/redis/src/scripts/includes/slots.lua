-- A process's connections, by slot (src/slots.ts): slot s is field
-- s % 128 of page floor(s / 128), the hash `<connections key>:<page>`
-- (field -> user id), small enough to stay a listpack. The connections key
-- itself holds 'p', the number of pages written, and 'n', the connections
-- counted. Pages carry the connections key's hash tag: on a Redis Cluster
-- they are in its slot.
local SLOTS_PER_PAGE = 128

local function page_key(connections_key, page)
  return connections_key .. ':' .. page
end

-- the page key, the field and the page number of `slot` (a string of digits)
local function slot_address(connections_key, slot)
  local n = tonumber(slot)
  local page = math.floor(n / SLOTS_PER_PAGE)
  return page_key(connections_key, page), tostring(n % SLOTS_PER_PAGE), page
end

local function is_slot(value)
  return string.match(value, '^%d+$') ~= nil and #value < 16
end
