--[[ settle_task: a worker writes the outcome of the task it ran, releases the task's lock
and, if asked, claims the next tasks of the queue: BullMQ's moveToFinished, one round trip.

KEYS[1] task hash       KEYS[2] active zset     KEYS[3] the new status's state set
KEYS[4] marker zset     KEYS[5] sequence counter   KEYS[6] delayed zset   KEYS[7] wait zset
KEYS[8] meta hash       KEYS[9] fence counter
KEYS[10] (optional) the task's lock, taken with the claim: released whatever the outcome,
         if it still holds the worker's value

ARGV[1] the queue's key prefix, conveyor:{<queue>}:
ARGV[2] the queue's name
ARGV[3] the outcome, JSON: {id, fence (the worker's token), status, score (due time or
        finish time), duration (ms, -1 = none), set (fields), unset (field names),
        lock (the lock's value, with KEYS[10])}
ARGV[4] the next claim, JSON as in claim_tasks, or '' for none
ARGV[5] limits, JSON: {promote, durations_kept, finished_ttl}

Returns {code, next_due, task, ...}: code 0 written, 1 this outcome was written already
under this token (a retry whose answer was lost: the tasks claimed with it then are
handed out again, and no others), -1 no such task, -2 not active under this token; then
the tasks of the next claim, as claim_tasks returns them. The next tasks are claimed
before the outcome is written, so a task the outcome puts back (a retry due now) is not
the one claimed after it.
]]
local prefix, queue = ARGV[1], ARGV[2]
local o = cjson.decode(ARGV[3])
local limits = cjson.decode(ARGV[5])
if KEYS[10] and redis.call('GET', KEYS[10]) == o.lock then
  redis.call('DEL', KEYS[10])
end
local state = read_state(prefix, o.id)
if not state[1] then
  return {-1, -1}
end
local written = state[1] ~= 'active' and state[2] == o.fence and state[6] == o.fence
if not written and (state[1] ~= 'active' or state[2] ~= o.fence) then
  return {-2, -1}
end
if written then
  -- A retry whose first answer was lost: the tasks claimed then are this worker's
  -- already, and it never heard of them. Hand them out again; claim nothing more.
  local c = ARGV[4] ~= '' and cjson.decode(ARGV[4]) or nil
  return claim_reply(prefix, {1}, claimed_before(prefix, KEYS[1], c), false)
end
local claimed, paused = {}, false
if ARGV[4] ~= '' then
  local c = cjson.decode(ARGV[4])
  promote_due(prefix, queue, c.now, limits.promote)
  claimed, paused = claim_ready(prefix, queue, c)
end
o.set.outcome_fence = o.fence
o.set.then_claimed = claimed_list(claimed)
apply_outcome(prefix, queue, o.id, state, 'active', o, limits)
if ARGV[4] == '' and redis.call('HGET', KEYS[8], 'limited') == '1' then
  wake(prefix)  -- a running slot freed, and this worker claims none: others may
end
return publish(prefix, claim_reply(prefix, {0}, claimed, paused))
