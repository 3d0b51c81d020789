--[[ remove_task: delete a task that is not active, reserving its id for a while.

KEYS[1] task hash
KEYS[2] removal reservation  conveyor:{q}:removed:<id>
KEYS[3..] every state zset of the queue (wait, delayed, completed, failed, cancelled)

ARGV[1] task id
ARGV[2] reservation time (ms): how long the id keeps answering "removed"

Returns 0 removed, -1 no such task, -3 the task is active
]]
local state = redis.call('HMGET', KEYS[1], 'status', 'fp')
if not state[1] then
  return -1
end
if state[1] == 'active' then
  return -3
end
for i = 3, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], state[2], 'PX', ARGV[2])
return 0
