--[[ enqueue_tasks: store new tasks, each idempotently on its id; the tasks of one queue
or of several, all or nothing.

The tasks come in groups, one per queue. Group g's keys start after those of the groups
before it (`b` of them: 5 + 3 per task each), its arguments are ARGV[4g - 3 .. 4g]. One
group is the usual call; several touch several hash slots, which one Redis allows (a
Cluster would not).

KEYS[b + 1] wait zset           score = packed priority + sequence
KEYS[b + 2] delayed zset        score = due time (ms)
KEYS[b + 3] marker zset         what idle workers block on
KEYS[b + 4] sequence counter    FIFO order among equal priorities
KEYS[b + 5] last creation order the last `ix` given in the queue
KEYS[b + 3i + 3] task hash             <prefix>task:<id>        for the group's i-th task
KEYS[b + 3i + 4] removal reservation   <prefix>removed:<id>     for the group's i-th task
KEYS[b + 3i + 5] the id index entry    conveyor:id:<id>         which queue holds the id;
                 or the task hash again: on a Cluster the entry is in another slot, and
                 the caller reserves it before this script runs

ARGV[4g - 3] a JSON array; the i-th element is the i-th task's hash, an object of strings,
        which holds (besides the task's own fields) fp, its fingerprint of name, payload
        and creator, and tokens, its search words separated by spaces; priority is absent
        when 0. One argument for the whole group keeps the client's packing cheap, and the
        hash alone (nothing repeated beside it) keeps it small.
ARGV[4g - 2] the queue's key prefix, conveyor:{<queue>}:
ARGV[4g - 1] the queue's name
ARGV[4g]     the queue's depth limit: the most unfinished tasks (waiting, parked by a
             flow limit included, delayed and active) it may hold, 0 = none. With 0
             nothing is counted: no command more.

Returns one reply per group, each one reply per task, in order (a bare code where
nothing comes with it):
        0             created
        {1, fields}   a task with this id and fingerprint exists: its hash
        2             removed within the idempotency window, same fingerprint
        -5            the id is held by a task (or reservation) with another fingerprint,
                      or by another queue: an id names one task across the deployment
or, having stored nothing of any group, {-7, g, depth, new, finished, finished_before}:
the tasks of group g that would be created (`new`; repeats of stored ids do not count)
would take its queue past its limit. `depth` is its unfinished tasks, `finished` and
`finished_before` how many tasks it finished in the minute of the first task's
creation time and in the minute before, for a caller to judge when room is likely.
]]

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

-- What enqueue (below) decides for a task, without writing: whether it would be created.
local function is_new(queue, key, reservation, owner_key)
  owner_key = id_index(key, owner_key)
  local owner = owner_key and redis.call('GET', owner_key)
  if (owner and owner ~= queue) or redis.call('EXISTS', reservation) == 1 then
    return false
  end
  return redis.call('EXISTS', key) == 0
end

-- {-7, ...} if the group's new tasks would take its queue past its limit; nil if they fit.
-- An id twice in the group counts once, as only its first is stored.
local function refusal(g, group)
  local new, seen = 0, {}
  for i, task in ipairs(group.tasks) do
    local k = group.base + 3 * i
    if not seen[task.id] and is_new(group.queue, KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]) then
      new = new + 1
    end
    seen[task.id] = true
  end
  if new == 0 then
    return nil
  end
  local prefix, base = group.prefix, group.base
  local depth = redis.call('ZCARD', KEYS[base + 1]) + redis.call('ZCARD', KEYS[base + 2])
    + redis.call('ZCARD', prefix .. K['active'])
  -- Waiting tasks a flow limit parked, or waiting behind their group's head, are out of
  -- the wait set, and count all the same.
  for _, name in ipairs(redis.call('SMEMBERS', prefix .. K['parked_names'])) do
    depth = depth + redis.call('ZCARD', prefix .. K['parked'] .. name)
  end
  depth = depth + tonumber(redis.call('GET', prefix .. K['grouped']) or '0')
  if depth + new <= group.limit then
    return nil
  end
  local minute = math.floor(tonumber(group.tasks[1].created_at) / 60000)
  local counts = redis.call('MGET', prefix .. K['finished'] .. minute,
    prefix .. K['finished'] .. (minute - 1))
  return {-7, g, depth, new, tonumber(counts[1] or '0'), tonumber(counts[2] or '0')}
end

local function enqueue_group(group)
  local prefix, queue, base = group.prefix, group.queue, group.base
  local wait_key, delayed_key, marker_key = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local replies = {}
  local wake = false
  local earliest = redis.call('ZRANGE', delayed_key, 0, 0, 'WITHSCORES')[2]
  earliest = earliest and tonumber(earliest)
  local last_ix = tonumber(redis.call('GET', KEYS[base + 5]) or '0')
  -- The counters are read once and written once: the script runs alone, so this is the
  -- same as a command per task, a few of them cheaper.
  local seq = tonumber(redis.call('GET', KEYS[base + 4]) or '0')
  local names = {}
  local stored = false
  local touched, behind = {}, 0  -- the groups of the waiting tasks stored, how many
  local grouped = false  -- whether any task stored has a group

  -- The sorted-set entries of the tasks stored, by key, added when the loop is done: one
  -- ZADD per key for the whole group, not four or five per task (the script runs alone,
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
      add_later(delayed_key, run_at, id)
      -- Only a new earliest due time changes how long idle workers should sleep.
      if earliest == nil or run_at < earliest then
        earliest = run_at
        wake = true
      end
    elseif task.group then
      -- Behind its group's head; the group gets one below if it has none.
      local score = wait_score(tonumber(task.priority or '0'), seq)
      add_later(prefix .. K['group'] .. task.group, score, id)
      touched[task.group] = true
      behind = behind + 1
    else
      add_later(wait_key, wait_score(tonumber(task.priority or '0'), seq), id)
      wake = true
    end
    grouped = grouped or task.group ~= nil
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
    owner_key = id_index(key, owner_key)
    local held = redis.call('MGET', owner_key or reservation, reservation)
    local owner, reserved = owner_key and held[1], held[2]
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
    if owner_key then
      owners[#owners + 1] = owner_key
      owners[#owners + 1] = queue
    end
    return 0
  end

  for i, task in ipairs(group.tasks) do
    local k = base + 3 * i
    replies[i] = enqueue(task, KEYS[k + 3], KEYS[k + 4], KEYS[k + 5])
  end

  for key, pending in pairs(entries) do
    call_in_runs('ZADD', key, pending)
  end
  call_in_runs('MSET', nil, owners)
  if wake then
    redis.call('ZADD', marker_key, 0, '0')
  end
  if grouped then
    redis.call('HSET', prefix .. K['meta'], 'grouped', '1')
  end
  if behind > 0 then
    redis.call('INCRBY', prefix .. K['grouped'], behind)
    for group in pairs(touched) do
      group_refill(prefix, group)
    end
  end
  if stored then
    redis.call('SET', KEYS[base + 5], string.format('%d', last_ix))
    redis.call('SET', KEYS[base + 4], string.format('%d', seq))
    for name in pairs(names) do
      redis.call('SADD', prefix .. K['names'], name)
    end
  end
  return publish(prefix, replies)
end

local groups, base = {}, 0
for g = 1, #ARGV / 4 do
  local tasks = cjson.decode(ARGV[4 * g - 3])
  groups[g] = {tasks = tasks, prefix = ARGV[4 * g - 2], queue = ARGV[4 * g - 1],
               limit = tonumber(ARGV[4 * g]), base = base}
  base = base + 5 + 3 * #tasks
end
-- Every group is admitted before any is stored: a request is refused whole.
for g, group in ipairs(groups) do
  if group.limit > 0 then
    local refused = refusal(g, group)
    if refused then
      return refused
    end
  end
end
local replies = {}
for g, group in ipairs(groups) do
  replies[g] = enqueue_group(group)
end
return replies
