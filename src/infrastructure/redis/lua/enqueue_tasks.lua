--[[ enqueue_tasks: store new tasks of one queue, each idempotently on its id.

KEYS[1] wait zset           score = packed priority + sequence
KEYS[2] delayed zset        score = due time (ms)
KEYS[3] marker zset         what idle workers block on
KEYS[4] sequence counter    FIFO order among equal priorities
KEYS[3 + 2i] task hash             conveyor:{q}:task:<id>        for the i-th task
KEYS[4 + 2i] removal reservation   conveyor:{q}:removed:<id>     for the i-th task

ARGV[1] a JSON array; the i-th element describes the i-th task:
        {id, fp (fingerprint of name + payload), status ("waiting" | "delayed"),
         run_at (ms), priority, fields (the task hash as an object of strings)}
        One argument for the whole batch keeps the client's packing cheap.

Returns one reply per task, in order:
        {0}           created
        {1, fields}   a task with this id and fingerprint exists: its hash
        {2}           removed within the idempotency window, same fingerprint
        {-1}          the id is held by a task (or reservation) with another fingerprint
]]
local tasks = cjson.decode(ARGV[1])
local replies = {}
local wake = false
local earliest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
earliest = earliest and tonumber(earliest)

local function store(task, key)
  local flat = {}
  for field, value in pairs(task.fields) do
    flat[#flat + 1] = field
    flat[#flat + 1] = value
  end
  redis.call('HSET', key, unpack(flat))
  if task.status == 'delayed' then
    redis.call('ZADD', KEYS[2], task.run_at, task.id)
    -- Only a new earliest due time changes how long idle workers should sleep.
    if earliest == nil or task.run_at < earliest then
      earliest = task.run_at
      wake = true
    end
  else
    local seq = redis.call('INCR', KEYS[4])
    redis.call('ZADD', KEYS[1], (task.priority + 1048576) * 4294967296 + seq % 4294967296, task.id)
    wake = true
  end
end

for i, task in ipairs(tasks) do
  local key = KEYS[3 + 2 * i]
  local existing = redis.call('HGET', key, 'fp')
  if existing then
    replies[i] = existing == task.fp and {1, redis.call('HGETALL', key)} or {-1}
  else
    local reserved = redis.call('GET', KEYS[4 + 2 * i])
    if reserved then
      replies[i] = reserved == task.fp and {2} or {-1}
    else
      store(task, key)
      replies[i] = {0}
    end
  end
end

if wake then
  redis.call('ZADD', KEYS[3], 0, '0')
end
return replies
