--[[ extend_lease: push an active task's lease deadline, for the holder of its token only.

KEYS[1] task hash
KEYS[2] active zset   score = lease deadline (ms)

ARGV[1] task id
ARGV[2] fencing token the caller holds
ARGV[3] new lease deadline (ms)

Returns 0 extended, 1 extended but an operator asked to cancel the task,
        -1 not active or the token is stale
]]
local state = redis.call('HMGET', KEYS[1], 'status', 'fence', 'cancel_requested')
if state[1] ~= 'active' or state[2] ~= ARGV[2] then
  return -1
end
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
if state[3] then
  return 1
end
return 0
