--[[ move_task: write a task's new state, decided by the caller, if the task is still as
the caller read it (same status and fencing token). A worker settling its outcome, the
recovery of a stalled task and an operator's cancel, kill or retry all come through here.

KEYS[1] task hash
KEYS[2] the state set of the status the caller read (ARGV[2])
KEYS[3] the state set of the new status (ARGV[4])
KEYS[4] marker zset
KEYS[5] sequence counter
KEYS[6] delayed zset (to tell whether a delayed task is now the earliest)
KEYS[7] (optional) the lock the outcome was reached under, to release with the move

ARGV[1] task id
ARGV[2] the status the caller read
ARGV[3] the fencing token the caller read (a worker: the one it holds)
ARGV[4] new status
ARGV[5] score in the new state set: due time (delayed), finish time (terminal)
ARGV[6] "expired before" (ms): move only if the lease ran out before it; 0 = no check
ARGV[7] the queue's key prefix, conveyor:{<queue>}:
ARGV[8] the queue's name
ARGV[9] duration of the attempt in ms, for the stats of completed tasks; -1 = none
ARGV[10] a stop request for the worker running the task ("cancel", "kill"), or ""
ARGV[11] the value KEYS[7] holds while the lock is the caller's (with KEYS[7] only)
ARGV[12] the fields to set, a JSON object of strings (one argument: cheap to send)
ARGV[13 ..] fields to delete

Returns 0 moved, -1 the task changed (status or token) or is gone, -2 the lease has not
expired. The lock of KEYS[7] is released if it is still the caller's, whatever the move
does: as the lock service's own release would be, one round trip sooner.
]]
local key, id = KEYS[1], ARGV[1]
local prefix, queue = ARGV[7], ARGV[8]
if KEYS[7] and redis.call('GET', KEYS[7]) == ARGV[11] then
  redis.call('DEL', KEYS[7])
end
local state = redis.call('HMGET', key, 'status', 'fence', 'priority', 'name', 'ix')
if state[1] ~= ARGV[2] or (state[2] or '0') ~= ARGV[3] then
  return -1
end
local expired_before = tonumber(ARGV[6])
if expired_before > 0 then
  local deadline = tonumber(redis.call('ZSCORE', KEYS[2], id) or '0')
  if deadline >= expired_before then
    return -2
  end
end

redis.call('ZREM', KEYS[2], id)
local flat = {}
for field, value in pairs(cjson.decode(ARGV[12])) do
  flat[#flat + 1] = field
  flat[#flat + 1] = value
end
if #flat > 0 then
  redis.call('HSET', key, unpack(flat))
end
if #ARGV > 12 then
  redis.call('HDEL', key, unpack(ARGV, 13))
end

local status = ARGV[4]
if status == 'waiting' then
  local seq = redis.call('INCR', KEYS[5])
  redis.call('ZADD', KEYS[3], wait_score(tonumber(state[3] or '0'), seq), id)
  redis.call('ZADD', KEYS[4], 0, '0')
elseif status == 'delayed' then
  local due = tonumber(ARGV[5])
  local first = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[3], due, id)
  if first[2] == nil or due < tonumber(first[2]) then
    redis.call('ZADD', KEYS[4], 0, '0')
  end
else
  redis.call('ZADD', KEYS[3], ARGV[5], id)
  local finished = tonumber(ARGV[5])
  local minute = prefix .. 'finished:' .. math.floor(finished / 60000)
  redis.call('INCR', minute)
  redis.call('PEXPIRE', minute, 7200000)
  local duration = tonumber(ARGV[9])
  if status == 'completed' and duration >= 0 then
    local durations = prefix .. 'durations:' .. state[4]
    redis.call('LPUSH', durations, duration)
    redis.call('LTRIM', durations, 0, 999)
  end
end
reindex(prefix, id, state[4], state[5], ARGV[2], status)
announce(prefix, queue, id, state[4], status)
if ARGV[10] ~= '' then
  redis.call('PUBLISH', prefix .. 'control:' .. DB, ARGV[10] .. ' ' .. id)
end
return 0
