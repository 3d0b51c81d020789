--[[ sweep_tasks: retention. Remove the oldest finished tasks past their keeping time.

KEYS[1] completed zset   score = finish time (ms)
KEYS[2] failed zset
KEYS[3] cancelled zset

ARGV[1] remove completed tasks finished before this time (ms); 0 = keep them all
ARGV[2] the same for failed tasks
ARGV[3] the same for cancelled tasks
ARGV[4] at most this many tasks in this call
ARGV[5] reservation time (ms) of a removed task's id
ARGV[6] the queue's key prefix, conveyor:{<queue>}:
ARGV[7] the queue's name

Returns the number of tasks removed.
]]
local budget = tonumber(ARGV[4])
local removed = 0
for i = 1, 3 do
  local before = tonumber(ARGV[i])
  if before > 0 and budget > 0 then
    local old = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', '(' .. before, 'LIMIT', 0, budget)
    for _, id in ipairs(old) do
      if forget(ARGV[6], ARGV[7], id, ARGV[5]) == 0 then
        removed = removed + 1
      end
    end
    budget = budget - #old
  end
end
return removed
