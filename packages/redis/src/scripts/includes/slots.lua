-- A process's connections, by slot (src/slots.ts): slot s is field
-- s % 128 of page floor(s / 128), the hash `<slots name>:<page>` (field ->
-- user id), small enough to stay a listpack. The process's connections key
-- holds 'p', the number of pages written, and 'n', the connections counted.
-- Pages carry the bucket's hash tag: on a Redis Cluster they are in its slot.
local SLOTS_PER_PAGE = 128

local function page_key(slots_name, page)
  return slots_name .. ':' .. page
end

-- the page key, the field and the page number of `slot` (a string of digits)
local function slot_address(slots_name, slot)
  local n = tonumber(slot)
  local page = math.floor(n / SLOTS_PER_PAGE)
  return page_key(slots_name, page), tostring(n % SLOTS_PER_PAGE), page
end

local function is_slot(value)
  return string.match(value, '^%d+$') ~= nil and #value < 16
end
