--[[ sweep_tasks: retention. Remove finished tasks past their keeping time, and those
beyond the newest so many of their status.

The caller picks the candidates (the oldest of each terminal state set) and names their
keys; this script checks each again, since it may have changed since it was picked.

KEYS[1] completed zset   score = finish time (ms)
KEYS[2] failed zset
KEYS[3] cancelled zset
KEYS[3i + 1] task hash             <prefix>task:<id>     for the i-th candidate
KEYS[3i + 2] removal reservation   <prefix>removed:<id>
KEYS[3i + 3] the id index entry    conveyor:id:<id>, or the task hash again (see id_index)

ARGV[1] remove completed tasks finished before this time (ms); 0 = keep them all
ARGV[2] the same for failed tasks
ARGV[3] the same for cancelled tasks
ARGV[4] reservation time (ms) of a removed task's id
ARGV[5] the queue's key prefix, conveyor:{<queue>}:
ARGV[6] the queue's name
ARGV[7] keep at most this many completed tasks, the newest; 0 = no count
ARGV[8] the same for failed tasks
ARGV[9] the same for cancelled tasks
ARGV[9 + i] the i-th candidate's id

Returns the ids of the tasks removed.
]]
local rules = {}
for i, status in ipairs({'completed', 'failed', 'cancelled'}) do
  rules[status] = {key = KEYS[i], before = tonumber(ARGV[i]), keep = tonumber(ARGV[6 + i])}
end
local prefix, queue = ARGV[5], ARGV[6]

-- Whether a finished task is past its keeping: too old, or behind the newest `keep`
-- (the candidates come oldest first, so each removal brings the next one up).
local function expired(rule, id)
  if rule.before > 0 then
    local finished = tonumber(redis.call('ZSCORE', rule.key, id) or '')
    if finished and finished < rule.before then
      return true
    end
  end
  if rule.keep > 0 then
    local newer = redis.call('ZREVRANK', rule.key, id)
    return newer ~= false and newer >= rule.keep
  end
  return false
end

local removed = {}
for i = 10, #ARGV do
  local id = ARGV[i]
  local n = i - 9
  local rule = rules[redis.call('HGET', KEYS[3 * n + 1], 'status')]
  if rule and expired(rule, id) then
    if forget(prefix, queue, id, ARGV[4], KEYS[3 * n + 3]) == 0 then
      removed[#removed + 1] = id
    end
  end
end
return publish(prefix, removed)
