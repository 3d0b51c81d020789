--[[ set_progress: record a running task's progress, for the holder of its token only.

KEYS[1] task hash

ARGV[1] fencing token the caller holds
ARGV[2] progress (JSON)

Returns 0 recorded, -1 no such task, -2 not active or the token is stale
]]
local state = redis.call('HMGET', KEYS[1], 'status', 'fence')
if not state[1] then
  return -1
end
if state[1] ~= 'active' or state[2] ~= ARGV[1] then
  return -2
end
redis.call('HSET', KEYS[1], 'progress', ARGV[2])
return 0
