--[[ recover_task: record a stall: the worker of an active task vanished (its lease ran out
with no outcome). The new state is decided by the caller (Task.stalled); a task back to
waiting goes ahead of every other of its priority.

KEYS[1] task hash   KEYS[2] active zset   KEYS[3] the new status's state set
KEYS[4] marker zset   KEYS[5] sequence counter   KEYS[6] delayed zset

ARGV[1] the queue's key prefix, conveyor:{<queue>}:
ARGV[2] the queue's name
ARGV[3] the outcome, JSON as in settle_task (fence: the token the caller read)
ARGV[4] expired before (ms): move only if the lease ran out before it, so a worker that
        is merely slow and renewed meanwhile keeps its task
ARGV[5] limits, JSON: {durations_kept, finished_ttl}

Returns 0 recorded, -1 no such task, -2 not active under that token, -3 the lease is
still valid.
]]
local prefix, queue = ARGV[1], ARGV[2]
local o = cjson.decode(ARGV[3])
local state = read_state(prefix, o.id)
if not state[1] then
  return -1
end
if state[1] ~= 'active' or state[2] ~= o.fence then
  return -2
end
local deadline = tonumber(redis.call('ZSCORE', KEYS[2], o.id) or '0')
if deadline >= tonumber(ARGV[4]) then
  return -3
end
o.ahead = true  -- back to waiting: it was claimed in its turn, and is taken over first
apply_outcome(prefix, queue, o.id, state, 'active', o, cjson.decode(ARGV[5]))
return publish(prefix, 0)
