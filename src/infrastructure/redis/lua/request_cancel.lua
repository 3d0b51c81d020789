--[[ request_cancel: ask the worker running an active task to cancel it.

KEYS[1] task hash

ARGV[1] task id
ARGV[2] the queue's key prefix, conveyor:{<queue>}:

The flag is read back by the worker's next lease renewal, should it miss the message.
Returns 0 requested, -1 no such task, -2 the task is not active (it changed meanwhile)
]]
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return -1
end
if status ~= 'active' then
  return -2
end
redis.call('HSET', KEYS[1], 'cancel_requested', '1')
redis.call('PUBLISH', ARGV[2] .. K['control'] .. DB, 'cancel ' .. ARGV[1])
return 0
