-- The replies that refuse a process (its write, renewal or cleanup), as
-- codes: src/scripts.ts maps them to FenceReason with one function.
-- Not registered (declared dead and cleaned up, or Redis lost its data):
local FENCE_GONE = -1
-- Redis's record of the process is older than what it saw applied (a
-- restore from an older snapshot, a failover to a lagging replica):
local FENCE_BEHIND = -2
