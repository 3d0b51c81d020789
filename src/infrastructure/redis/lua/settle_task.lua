--[[ settle_task: move an active task to the state its worker decided, fenced.

KEYS[1] task hash
KEYS[2] active zset
KEYS[3] target zset: wait, delayed, completed, failed or cancelled (by ARGV[3])
KEYS[4] marker zset
KEYS[5] sequence counter
KEYS[6] delayed zset (to tell whether a delayed task is now the earliest)

ARGV[1] task id
ARGV[2] fencing token the caller holds
ARGV[3] new status
ARGV[4] score in the target set: due time (delayed) or finish time (terminal)
ARGV[5] "expired before" (ms): settle only if the lease ran out before it; 0 = no check
ARGV[6] n: number of field, value pairs that follow
ARGV[7 .. 6+2n] field, value pairs to set; the rest: fields to delete

Returns 0 settled, -1 not active or the token is stale, -2 the lease has not expired
]]
local key = KEYS[1]
local id = ARGV[1]
local state = redis.call('HMGET', key, 'status', 'fence', 'priority')
if state[1] ~= 'active' or state[2] ~= ARGV[2] then
  return -1
end
local expired_before = tonumber(ARGV[5])
if expired_before > 0 then
  local deadline = tonumber(redis.call('ZSCORE', KEYS[2], id) or '0')
  if deadline >= expired_before then
    return -2
  end
end

redis.call('ZREM', KEYS[2], id)
local n = tonumber(ARGV[6])
local last_set = 6 + 2 * n
if n > 0 then
  redis.call('HSET', key, unpack(ARGV, 7, last_set))
end
if #ARGV > last_set then
  redis.call('HDEL', key, unpack(ARGV, last_set + 1))
end

local status = ARGV[3]
if status == 'waiting' then
  local seq = redis.call('INCR', KEYS[5])
  local priority = tonumber(state[3] or '0')
  redis.call('ZADD', KEYS[3], (priority + 1048576) * 4294967296 + seq % 4294967296, id)
  redis.call('ZADD', KEYS[4], 0, '0')
elseif status == 'delayed' then
  local due = tonumber(ARGV[4])
  local first = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[3], due, id)
  if first[2] == nil or due < tonumber(first[2]) then
    redis.call('ZADD', KEYS[4], 0, '0')
  end
else
  redis.call('ZADD', KEYS[3], ARGV[4], id)
end
return 0
