-- Says a process announced the transitions of batch ARGV[1], so that no
-- cleaner announces them again (includes/record.lua). Sent when no batch
-- follows at once; a later one would say it too.
--
-- KEYS[1] the process's record
-- ARGV[1] the batch number
--
-- Returns 1.

--- @include "includes/record.lua"

local seq = tonumber(ARGV[1])
if not seq then return redis.error_reply('ERR presence ack: malformed arguments') end
record_announced(KEYS[1], seq)
return 1
