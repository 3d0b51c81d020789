--[[ claim_tasks: promote due delayed tasks, then take the first ready ones.

KEYS[1] wait zset      score = packed priority + sequence
KEYS[2] delayed zset   score = due time (ms)
KEYS[3] active zset    score = lease deadline (ms)
KEYS[4] marker zset    what idle workers block on
KEYS[5] meta hash      field "paused" = "1" while the queue is paused
KEYS[6] fence counter  one strictly increasing token per claim
KEYS[7] sequence counter

ARGV[1] now (ms)
ARGV[2] how many tasks to take at most
ARGV[3] lease deadline (ms) for the claimed tasks
ARGV[4] worker id
ARGV[5] the queue's key prefix, conveyor:{<queue>}:
ARGV[6] the queue's name

Returns {next_due, task fields, task fields, ...}: the hashes of the claimed tasks (status
already "active", fence and worker set); next_due is the earliest delayed due time when
nothing was claimed (-1 if there is none).
]]
local now = tonumber(ARGV[1])
local prefix, queue = ARGV[5], ARGV[6]

-- Promotion happens here, inside the claim, so no poller is needed and a due task is
-- claimable in the very call that first sees it due.
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  local key = prefix .. 'task:' .. id
  local task = redis.call('HMGET', key, 'priority', 'name', 'ix')
  local seq = redis.call('INCR', KEYS[7])
  redis.call('ZADD', KEYS[1], wait_score(tonumber(task[1] or '0'), seq), id)
  redis.call('HSET', key, 'status', 'waiting')
  reindex(prefix, id, task[2], task[3], 'delayed', 'waiting')
  announce(prefix, queue, id, task[2], 'waiting')
end
if #due > 0 then
  redis.call('ZREM', KEYS[2], unpack(due))
end

if redis.call('HGET', KEYS[5], 'paused') == '1' then
  return {-1}
end

local result = {-1}
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[2]))
for i = 1, #popped, 2 do
  local id = popped[i]
  local key = prefix .. 'task:' .. id
  local fence = redis.call('INCR', KEYS[6])
  redis.call('HSET', key, 'status', 'active', 'worker_id', ARGV[4], 'started_at', ARGV[1],
    'fence', fence)
  redis.call('ZADD', KEYS[3], ARGV[3], id)
  local fields = redis.call('HGETALL', key)
  local name, ix
  for j = 1, #fields, 2 do
    if fields[j] == 'name' then name = fields[j + 1] elseif fields[j] == 'ix' then ix = fields[j + 1] end
  end
  reindex(prefix, id, name, ix, 'waiting', 'active')
  announce(prefix, queue, id, name, 'active')
  result[#result + 1] = fields
end

if #popped > 0 then
  -- More work left: wake the next idle worker rather than leave it to its timeout.
  if redis.call('ZCARD', KEYS[1]) > 0 then
    redis.call('ZADD', KEYS[4], 0, '0')
  end
else
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if first[2] then
    result[1] = tonumber(first[2])
  end
end
return result
