--[[ enqueue_tasks: store new tasks of one queue, each idempotently on its id.

KEYS[1] wait zset           score = packed priority + sequence
KEYS[2] delayed zset        score = due time (ms)
KEYS[3] marker zset         what idle workers block on
KEYS[4] sequence counter    FIFO order among equal priorities
KEYS[5] last creation order the last `ix` given in the queue
KEYS[3i + 3] task hash             <prefix>task:<id>        for the i-th task
KEYS[3i + 4] removal reservation   <prefix>removed:<id>     for the i-th task
KEYS[3i + 5] the id index entry    conveyor:id:<id>         which queue holds the id

ARGV[1] a JSON array; the i-th element is the i-th task's hash, an object of strings, which
        holds (besides the task's own fields) fp, its fingerprint of name, payload and
        creator, and tokens, its search words separated by spaces; priority is absent when 0.
        One argument for the whole batch keeps the client's packing cheap, and the hash
        alone (nothing repeated beside it) keeps it small.
ARGV[2] the queue's key prefix, conveyor:{<queue>}:
ARGV[3] the queue's name

Returns one reply per task, in order (a bare code where nothing comes with it):
        0             created
        {1, fields}   a task with this id and fingerprint exists: its hash
        2             removed within the idempotency window, same fingerprint
        -5            the id is held by a task (or reservation) with another fingerprint,
                      or by another queue: an id names one task across the deployment
]]
local tasks = cjson.decode(ARGV[1])
local prefix, queue = ARGV[2], ARGV[3]
local replies = {}
local wake = false
local earliest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
earliest = earliest and tonumber(earliest)
local last_ix = tonumber(redis.call('GET', KEYS[5]) or '0')
-- The counters are read once and written once: the script runs alone, so this is the same
-- as a command per task, a few of them cheaper.
local seq = tonumber(redis.call('GET', KEYS[4]) or '0')
local names = {}
local stored = false

-- The sorted-set entries of the tasks stored, by key, added when the loop is done: one
-- ZADD per key for the whole batch, not four or five per task (the script runs alone,
-- so nothing sees the sets in between).
local entries = {}

local function add_later(key, score, member)
  local pending = entries[key]
  if pending == nil then
    pending = {}
    entries[key] = pending
  end
  pending[#pending + 1] = score
  pending[#pending + 1] = member
end

-- redis.call(command, key, ...args) in runs of at most 4,000 args: unpack's stack holds a
-- few thousand values. `key` nil: the args are all there is (MSET's keys and values).
local function call_in_runs(command, key, args)
  for first = 1, #args, 4000 do
    local last = math.min(first + 3999, #args)
    if key then
      redis.call(command, key, unpack(args, first, last))
    else
      redis.call(command, unpack(args, first, last))
    end
  end
end

local function store(task, key)
  seq = seq + 1
  -- Creation order, strictly increasing within the queue: listing pages on it with a
  -- cursor. The creation time in ms * 1000, or just above the last one given.
  local ix = math.max(tonumber(task.created_at) * 1000, last_ix + 1)
  last_ix, stored = ix, true
  local flat = {'ix', ix}
  for field, value in pairs(task) do
    flat[#flat + 1] = field
    flat[#flat + 1] = value
  end
  redis.call('HSET', key, unpack(flat))
  local id = task.id
  if task.status == 'delayed' then
    local run_at = tonumber(task.run_at)
    add_later(KEYS[2], run_at, id)
    -- Only a new earliest due time changes how long idle workers should sleep.
    if earliest == nil or run_at < earliest then
      earliest = run_at
      wake = true
    end
  else
    add_later(KEYS[1], wait_score(tonumber(task.priority or '0'), seq), id)
    wake = true
  end
  add_later(index_key(prefix, task.status, task.name), ix, id)
  add_later(prefix .. K['ids'], 0, id)
  names[task.name] = true
  for token in string.gmatch(task.tokens, '%S+') do
    add_later(prefix .. K['token'] .. token, ix, id)
  end
  announce(prefix, queue, id, task.name, task.status)
end

-- The id index entries of the tasks stored (no expiry while the task exists), set with
-- one MSET when the loop is done, as the sorted-set entries are.
local owners = {}

local function enqueue(task, key, reservation, owner_key)
  local held = redis.call('MGET', owner_key, reservation)
  local owner, reserved = held[1], held[2]
  if owner and owner ~= queue then
    return -5
  end
  local existing = redis.call('HGET', key, 'fp')
  if existing then
    return existing == task.fp and {1, redis.call('HGETALL', key)} or -5
  end
  if reserved then
    return reserved == task.fp and 2 or -5
  end
  store(task, key)
  owners[#owners + 1] = owner_key
  owners[#owners + 1] = queue
  return 0
end

for i, task in ipairs(tasks) do
  replies[i] = enqueue(task, KEYS[3 * i + 3], KEYS[3 * i + 4], KEYS[3 * i + 5])
end

for key, pending in pairs(entries) do
  call_in_runs('ZADD', key, pending)
end
call_in_runs('MSET', nil, owners)
if wake then
  redis.call('ZADD', KEYS[3], 0, '0')
end
if stored then
  redis.call('SET', KEYS[5], string.format('%d', last_ix))
  redis.call('SET', KEYS[4], string.format('%d', seq))
  for name in pairs(names) do
    redis.call('SADD', prefix .. K['names'], name)
  end
end
return publish(prefix, replies)
