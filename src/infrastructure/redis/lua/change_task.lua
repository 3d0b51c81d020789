--[[ change_task: an operator's change of a task (cancel, kill, retry), written only if
the task is still as the operator read it; the new state is decided by the caller (Task).

KEYS[1] task hash   KEYS[2] the state set of the status read   KEYS[3] the new state set
KEYS[4] marker zset   KEYS[5] sequence counter   KEYS[6] delayed zset

ARGV[1] the queue's key prefix, conveyor:{<queue>}:
ARGV[2] the queue's name
ARGV[3] the outcome, JSON as in settle_task, plus `from`: the status the operator read
        (fence: the token read)
ARGV[4] a stop request for the worker running the task ("cancel", "kill"), or ''
ARGV[5] limits, JSON: {durations_kept, finished_ttl}

Returns 0 written, -1 no such task, -2 the task changed meanwhile (status or token).
]]
local prefix, queue = ARGV[1], ARGV[2]
local o = cjson.decode(ARGV[3])
local state = read_state(prefix, o.id)
if not state[1] then
  return -1
end
if state[1] ~= o.from or (state[2] or '0') ~= o.fence then
  return -2
end
apply_outcome(prefix, queue, o.id, state, o.from, o, cjson.decode(ARGV[5]))
if ARGV[4] ~= '' then
  redis.call('PUBLISH', prefix .. K['control'] .. DB, ARGV[4] .. ' ' .. o.id)
end
return publish(prefix, 0)
