--[[ enqueue_task: store one new task, idempotently on its id.

KEYS[1] task hash           conveyor:{q}:task:<id>
KEYS[2] wait zset           score = packed priority + sequence
KEYS[3] delayed zset        score = due time (ms)
KEYS[4] marker zset         what idle workers block on
KEYS[5] sequence counter    FIFO order among equal priorities
KEYS[6] removal reservation conveyor:{q}:removed:<id> (fingerprint of a removed task)

ARGV[1] task id
ARGV[2] fingerprint of name + payload
ARGV[3] status: "waiting" or "delayed"
ARGV[4] run_at (ms)
ARGV[5] priority
ARGV[6..] field, value pairs of the task hash (fingerprint and status included)

Returns {0}           created
        {1, fields}   a task with this id and fingerprint exists: its hash
        {2}           removed within the idempotency window, same fingerprint
        {-1}          the id is held by a task (or reservation) with another fingerprint
]]
local existing = redis.call('HGET', KEYS[1], 'fp')
if existing then
  if existing == ARGV[2] then
    return {1, redis.call('HGETALL', KEYS[1])}
  end
  return {-1}
end
local reserved = redis.call('GET', KEYS[6])
if reserved then
  if reserved == ARGV[2] then return {2} end
  return {-1}
end

local id = ARGV[1]
redis.call('HSET', KEYS[1], unpack(ARGV, 6))

if ARGV[3] == 'delayed' then
  local due = tonumber(ARGV[4])
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[3], due, id)
  -- Only a new earliest due time changes how long idle workers should sleep.
  if first[2] == nil or due < tonumber(first[2]) then
    redis.call('ZADD', KEYS[4], 0, '0')
  end
else
  local seq = redis.call('INCR', KEYS[5])
  redis.call('ZADD', KEYS[2], (tonumber(ARGV[5]) + 1048576) * 4294967296 + seq % 4294967296, id)
  redis.call('ZADD', KEYS[4], 0, '0')
end
return {0}
