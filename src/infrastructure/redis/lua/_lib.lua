--[[ _lib: helpers shared by every script; Scripts puts this file above each one.

Above it, Scripts sets two constants: DB, the database number (pub/sub is server-wide and
a script cannot ask which database it runs on), and K, the key layout of keys.py (LAYOUT):
a queue's key is its prefix `conveyor:{<queue>}:` followed by K[part] (and an id or name).
Keys a script finds itself (a claimed task's hash, its index entries) are built from K, so
they stay inside the queue's hash tag. A script that takes or releases a task's lock
(`lock:task:<id>`) is called that way only where the lock's one master is this Redis.

Return codes (scripts.py Code, one meaning each, in every script):
   0 done                    1 there already, the same (an enqueue, an outcome)
   2 removed, the same       3 held, and an operator asked to cancel
  -1 no such task           -2 not as the caller read it (status or fencing token)
  -3 the lease is still valid  -4 the task is active  -5 the id is held by another request
  -6 Redis refused a handler's write (its key holds another type)
  -7 an enqueue: the queue is at its depth limit (nothing was stored)
]]
local STATUS_SET = {
  waiting = K['waiting'], delayed = K['delayed'], active = K['active'],
  completed = K['completed'], failed = K['failed'], cancelled = K['cancelled'],
}
local TERMINAL = {completed = true, failed = true, cancelled = true}

local function state_key(prefix, status)
  return prefix .. STATUS_SET[status]
end

local function task_key(prefix, id)
  return prefix .. K['task'] .. id
end

local function index_key(prefix, status, name)
  return prefix .. K['index'] .. status .. ':' .. name
end

-- Move a task between the per-status, per-name listing indexes.
local function reindex(prefix, id, name, ix, from, to)
  if from then
    redis.call('ZREM', index_key(prefix, from, name), id)
  end
  if to then
    redis.call('ZADD', index_key(prefix, to, name), ix, id)
  end
end

-- The transitions of this call, published together when it ends (see publish): one
-- PUBLISH per task was the dearest thing a bulk enqueue did.
local EVENTS = {}

local function announce(prefix, queue, id, name, status)
  EVENTS[#EVENTS + 1] = {id = id, queue = queue, name = name, status = status}
end

-- Publish this call's transitions as one message, a JSON array, on the queue's events
-- channel; returns `result`, so a script ends with `return publish(prefix, result)`.
local function publish(prefix, result)
  if #EVENTS > 0 then
    redis.call('PUBLISH', prefix .. K['events'] .. DB, cjson.encode(EVENTS))
    EVENTS = {}
  end
  return result
end

local function wait_score(priority, seq)
  return (priority + 1048576) * 4294967296 + seq % 4294967296
end

local function wake(prefix)
  redis.call('ZADD', prefix .. K['marker'], 0, '0')
end

local function field_of(fields, name)
  for j = 1, #fields, 2 do
    if fields[j] == name then
      return fields[j + 1]
    end
  end
end

-- Flow limits. A queue with any has `limited` = 1 in its meta hash (one HMGET with
-- `paused`: a queue without limits reads nothing more) and its limits in the limits hash:
-- `rate` ("max:window ms") and `concurrency` for the queue, `type:<name>:rate` and
-- `type:<name>:concurrency` per task type. A rate counts starts in a sliding window (a
-- sorted set of recent starts, by time); a concurrency counts running tasks, those of
-- the queue whose lease has not run out, those of a type in its active index. A ready
-- task of a type at its limit is parked (out of the wait set, its score kept) until a
-- claim finds room for that type again.
local PARK_SCAN = 100  -- tasks a claim may park beyond those it takes
local UNPARK_MAX = 1000  -- parked tasks of one type a claim puts back at most
local REOPEN = {}  -- prefix -> when a rate limit that held back ready tasks opens

local function parse_rate(value)
  local max, window = string.match(value, '^(%d+):(%d+)$')
  return {max = tonumber(max), window = tonumber(window)}
end

local function read_limits(prefix)
  local flat = redis.call('HGETALL', prefix .. K['limits'])
  local lim = {queue = {}, types = {}, any_type = false}
  for i = 1, #flat, 2 do
    local scope, name, kind = string.match(flat[i], '^(%a+):(.+):(%a+)$')
    local target = lim.queue
    if scope == 'group' then
      target = {}  -- read by group_limit, for one group at a time
    elseif name then
      target = lim.types[name] or {}
      lim.types[name] = target
      lim.any_type = true
    else
      kind = flat[i]
    end
    if kind == 'rate' then
      target.rate = parse_rate(flat[i + 1])
    else
      target.concurrency = tonumber(flat[i + 1])
    end
  end
  return lim
end

local function soonest(a, b)
  if a == nil or (b ~= nil and b < a) then
    return b
  end
  return a
end

-- How many more may start now under `limit` (math.huge: no limit), `running` running,
-- and when the rate lets one more start if it lets none now (else nil).
local function room(prefix, scope, limit, running, now)
  local left, reopen = math.huge, nil
  if limit.concurrency then
    left = limit.concurrency - running
  end
  if limit.rate then
    local starts = prefix .. K['starts'] .. scope
    redis.call('ZREMRANGEBYSCORE', starts, '-inf', now - limit.rate.window)
    local free = limit.rate.max - redis.call('ZCARD', starts)
    if free <= 0 then
      local oldest = redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')
      reopen = tonumber(oldest[2]) + limit.rate.window
    end
    left = math.min(left, free)
  end
  return math.max(left, 0), reopen
end

-- Groups (a task's `group`: a tenant, a customer). A group's waiting tasks wait in its
-- own set, by priority and order, and one of them at a time, its head, is in the queue's
-- wait set, at the back, scored as a task of priority 0: groups take turns with one
-- another and with the queue's ungrouped tasks, whatever their sizes and priorities. A
-- group gets a head only while it has room under its limits (fields `group:<name>:rate`
-- and `group:<name>:concurrency` of the limits hash, each falling back on `group:*:`):
-- at its concurrency limit, its next head comes when one of its tasks stops running; at
-- its rate limit, when the window opens (the blocked set, looked at by the claims of a
-- queue with groups, `grouped` = 1 in its meta hash). A group's keys exist while it has
-- tasks; its times are the Redis server's clock.
local NOW = nil
local GROUP_LIMITS = {}  -- group -> its limit, read once per call

local function now_ms()
  if NOW == nil then
    local time = redis.call('TIME')
    NOW = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  end
  return NOW
end

local function group_limit(prefix, group)
  local limit = GROUP_LIMITS[group]
  if limit == nil then
    local own = 'group:' .. group .. ':'
    local v = redis.call('HMGET', prefix .. K['limits'], own .. 'concurrency', own .. 'rate',
      'group:*:concurrency', 'group:*:rate')
    limit = {}
    local concurrency, rate = v[1] or v[3], v[2] or v[4]
    if concurrency then
      limit.concurrency = tonumber(concurrency)
    end
    if rate then
      limit.rate = parse_rate(rate)
    end
    GROUP_LIMITS[group] = limit
  end
  return limit
end

-- Give `group` a head in the wait set if it has none, has a task behind and room to
-- start one; held by its rate, it goes to the blocked set until the window opens.
local function group_refill(prefix, group)
  local heads = prefix .. K['group_heads']
  local behind = prefix .. K['group'] .. group
  if redis.call('HEXISTS', heads, group) == 1 or redis.call('EXISTS', behind) == 0 then
    return
  end
  local limit = group_limit(prefix, group)
  if limit.concurrency or limit.rate then
    local running = redis.call('ZCARD', prefix .. K['group_active'] .. group)
    local free, reopen = room(prefix, 'group:' .. group, limit, running, now_ms())
    if free <= 0 then
      if reopen then
        redis.call('ZADD', prefix .. K['group_blocked'], reopen, group)
      end
      return
    end
  end
  local head = redis.call('ZPOPMIN', behind)
  redis.call('DECR', prefix .. K['grouped'])
  local seq = redis.call('INCR', prefix .. K['seq'])
  redis.call('ZADD', prefix .. K['waiting'], wait_score(0, seq), head[1])
  redis.call('HSET', heads, group, head[1])
  wake(prefix)
end

-- A task of `group` becomes waiting; `score` orders it within the group.
local function group_enter(prefix, id, group, score)
  if redis.call('ZADD', prefix .. K['group'] .. group, score, id) == 1 then
    redis.call('INCR', prefix .. K['grouped'])
  end
  group_refill(prefix, group)
end

-- A waiting task of `group` leaves otherwise than by a claim (cancelled, removed); its
-- entry in the wait set, if it was the head, is gone already.
local function group_leave(prefix, id, group)
  local heads = prefix .. K['group_heads']
  if redis.call('ZREM', prefix .. K['group'] .. group, id) == 1 then
    redis.call('DECR', prefix .. K['grouped'])
  elseif redis.call('HGET', heads, group) == id then
    redis.call('HDEL', heads, group)
    group_refill(prefix, group)
  end
end

-- A task of `group` was claimed (`member`: id:fence): it counts as running in its group,
-- and the group's next task takes its turn at the back of the wait set.
local function group_start(prefix, id, group, member)
  local heads = prefix .. K['group_heads']
  if redis.call('HGET', heads, group) == id then
    redis.call('HDEL', heads, group)
  end
  redis.call('ZADD', prefix .. K['group_active'] .. group, now_ms(), id)
  local limit = group_limit(prefix, group)
  if limit.rate then
    local starts = prefix .. K['starts'] .. 'group:' .. group
    redis.call('ZADD', starts, now_ms(), member)
    redis.call('PEXPIRE', starts, limit.rate.window)
  end
  group_refill(prefix, group)
end

-- A task of `group` stopped running (settled, recovered, changed): its slot is free.
local function group_end(prefix, id, group)
  if redis.call('ZREM', prefix .. K['group_active'] .. group, id) == 1 then
    group_refill(prefix, group)
  end
end

-- Groups whose rate window opened get their heads; the next opening is when to look again.
local function unblock_groups(prefix)
  local blocked = prefix .. K['group_blocked']
  local due = redis.call('ZRANGEBYSCORE', blocked, '-inf', now_ms(), 'LIMIT', 0, UNPARK_MAX)
  if #due > 0 then
    redis.call('ZREM', blocked, unpack(due))
    for _, group in ipairs(due) do
      group_refill(prefix, group)
    end
  end
  local first = redis.call('ZRANGE', blocked, 0, 0, 'WITHSCORES')
  if first[2] then
    REOPEN[prefix] = soonest(REOPEN[prefix], tonumber(first[2]))
  end
end

-- Due delayed tasks become waiting, at most `limit` of them: done inside every claim, so
-- no poller is needed and a due task is claimable in the very call that first sees it.
local function promote_due(prefix, queue, now, limit)
  local delayed = prefix .. K['delayed']
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local key = task_key(prefix, id)
    local task = redis.call('HMGET', key, 'priority', 'name', 'ix', 'group')
    local seq = redis.call('INCR', prefix .. K['seq'])
    local score = wait_score(tonumber(task[1] or '0'), seq)
    redis.call('HSET', key, 'status', 'waiting')
    if task[4] then
      group_enter(prefix, id, task[4], score)
    else
      redis.call('ZADD', prefix .. K['waiting'], score, id)
    end
    reindex(prefix, id, task[2], task[3], 'delayed', 'waiting')
    announce(prefix, queue, id, task[2], 'waiting')
  end
  if #due > 0 then
    redis.call('ZREM', delayed, unpack(due))
  end
end

local function type_room(prefix, limit, name, now)
  local running = redis.call('ZCARD', index_key(prefix, 'active', name))
  return room(prefix, 'type:' .. name, limit, running, now)
end

-- Parked tasks of types with room again go back to the wait set, ahead by their scores.
local function unpark(prefix, lim, now)
  for _, name in ipairs(redis.call('SMEMBERS', prefix .. K['parked_names'])) do
    local free, reopen = UNPARK_MAX, nil
    if lim.types[name] then
      free, reopen = type_room(prefix, lim.types[name], name, now)
      free = math.min(free, UNPARK_MAX)
    end
    REOPEN[prefix] = soonest(REOPEN[prefix], reopen)
    local parked = prefix .. K['parked'] .. name
    if free > 0 then
      local back = redis.call('ZPOPMIN', parked, free)
      for i = 1, #back, 2 do
        if redis.call('HGET', task_key(prefix, back[i]), 'status') == 'waiting' then
          redis.call('ZADD', prefix .. K['waiting'], back[i + 1], back[i])
        end
      end
    end
    if redis.call('ZCARD', parked) == 0 then
      redis.call('SREM', prefix .. K['parked_names'], name)
    end
  end
end

-- Up to `limit` ready tasks as ZPOPMIN gives them, skipping (parking) those of a type
-- at its limit: at most PARK_SCAN parked per call.
local function take_within(prefix, lim, limit, now)
  local taken, rooms, scanned = {}, {}, 0
  while #taken < 2 * limit and scanned < limit + PARK_SCAN do
    local head = redis.call('ZPOPMIN', prefix .. K['waiting'], 1)
    if #head == 0 then
      break
    end
    scanned = scanned + 1
    local name = redis.call('HGET', task_key(prefix, head[1]), 'name')
    local limit_of = lim.types[name]
    local fits = true
    if limit_of then
      if rooms[name] == nil then
        local reopen
        rooms[name], reopen = type_room(prefix, limit_of, name, now)
        REOPEN[prefix] = soonest(REOPEN[prefix], reopen)
      end
      fits = rooms[name] > 0
      rooms[name] = rooms[name] - 1
    end
    if fits then
      taken[#taken + 1] = head[1]
      taken[#taken + 1] = head[2]
    else
      redis.call('ZADD', prefix .. K['parked'] .. name, head[2], head[1])
      redis.call('SADD', prefix .. K['parked_names'], name)
    end
  end
  return taken
end

-- The queue's limits and how many of `wanted` may start now under the queue's own.
local function limited_take(prefix, wanted, now)
  local lim = read_limits(prefix)
  unpark(prefix, lim, now)
  local running = redis.call('ZCOUNT', prefix .. K['active'], now, '+inf')
  local free, reopen = room(prefix, 'queue', lim.queue, running, now)
  if redis.call('ZCARD', prefix .. K['waiting']) > 0 then
    REOPEN[prefix] = soonest(REOPEN[prefix], reopen)
  end
  return lim, math.min(wanted, free)
end

local function record_start(prefix, lim, name, member, now)
  if lim.queue.rate then
    redis.call('ZADD', prefix .. K['starts'] .. 'queue', now, member)
  end
  local limit_of = lim.types[name]
  if limit_of and limit_of.rate then
    redis.call('ZADD', prefix .. K['starts'] .. 'type:' .. name, now, member)
  end
end

-- Task `id`, just taken from the wait set, becomes active for worker `c.worker`.
local function claim_one(prefix, queue, c, lim, grouped, id)
  local key = task_key(prefix, id)
  local fence = redis.call('INCR', prefix .. K['fence'])
  redis.call('HSET', key, 'status', 'active', 'worker_id', c.worker, 'started_at', c.now,
    'fence', fence)
  redis.call('ZADD', prefix .. K['active'], c.deadline, id)
  local fields = redis.call('HGETALL', key)
  local name = field_of(fields, 'name')
  reindex(prefix, id, name, field_of(fields, 'ix'), 'waiting', 'active')
  announce(prefix, queue, id, name, 'active')
  if lim then
    record_start(prefix, lim, name, id .. ':' .. fence, c.now)
  end
  local group = grouped and field_of(fields, 'group')
  if group then
    group_start(prefix, id, group, id .. ':' .. fence)
  end
  if c.lock_ttl then
    local value = c.worker .. ':' .. fence
    if redis.call('SET', c.lock_prefix .. id, value, 'NX', 'PX', c.lock_ttl) then
      fields[#fields + 1] = 'lock'
      fields[#fields + 1] = value
    end
  end
  return fields
end

-- Take up to `c.limit` ready tasks for worker `c.worker`, leased until `c.deadline`,
-- within the queue's flow limits. With `c.lock_ttl`, each task's lock is taken too, with
-- the value worker:fence, unless someone holds it: then the task goes out without it and
-- the worker asks the lock service. Returns the tasks' hashes (flat field lists, `lock`
-- added when taken), and whether the queue is paused.
local function claim_ready(prefix, queue, c)
  local meta = redis.call('HMGET', prefix .. K['meta'], 'paused', 'limited', 'grouped')
  if meta[1] == '1' then
    return {}, true
  end
  local grouped = meta[3] == '1'
  if grouped then
    unblock_groups(prefix)
  end
  local lim, wanted = nil, c.limit
  if meta[2] == '1' then
    lim, wanted = limited_take(prefix, c.limit, c.now)
  end
  local claimed = {}
  -- One pass takes what the wait set holds; with groups, a group whose task was taken
  -- may have put its next one in, so passes go on until the wait set has nothing more.
  repeat
    local want, popped = wanted - #claimed, {}
    if want > 0 and lim and lim.any_type then
      popped = take_within(prefix, lim, want, c.now)
    elseif want > 0 then
      popped = redis.call('ZPOPMIN', prefix .. K['waiting'], want)
    end
    for i = 1, #popped, 2 do
      claimed[#claimed + 1] = claim_one(prefix, queue, c, lim, grouped, popped[i])
    end
  until not grouped or #popped == 0 or #claimed >= wanted
  -- More work left: wake the next idle worker rather than leave it to its timeout.
  if #claimed > 0 and redis.call('ZCARD', prefix .. K['waiting']) > 0 then
    wake(prefix)
  end
  return claimed, false
end

-- The earliest due time of the delayed tasks, or -1.
local function next_due(prefix)
  local first = redis.call('ZRANGE', prefix .. K['delayed'], 0, 0, 'WITHSCORES')
  return first[2] and tonumber(first[2]) or -1
end

-- When an idle worker should look at the queue again: its next due time, or sooner when
-- a rate limit held back ready tasks and opens earlier (-1: nothing to wait for).
local function next_wake(prefix)
  local due = next_due(prefix)
  local reopen = REOPEN[prefix]
  if reopen and (due < 0 or reopen < due) then
    return reopen
  end
  return due
end

-- A claim's reply: {next_due, task, ...}; next_due is when to look again (next_wake) when
-- nothing was claimed from a queue that is not paused (an idle worker sleeps until then),
-- and -1 otherwise.
local function claim_reply(prefix, head, claimed, paused)
  local due = -1
  if #claimed == 0 and not paused then
    due = next_wake(prefix)
  end
  local reply = head
  reply[#reply + 1] = due
  for _, fields in ipairs(claimed) do
    reply[#reply + 1] = fields
  end
  return reply
end

-- The claimed tasks as "id:fence id:fence", kept with an outcome (its `then_claimed`).
local function claimed_list(claimed)
  local parts = {}
  for _, fields in ipairs(claimed) do
    parts[#parts + 1] = field_of(fields, 'id') .. ':' .. field_of(fields, 'fence')
  end
  return table.concat(parts, ' ')
end

-- The tasks an outcome kept in `then_claimed` that are still active under the fence they
-- were claimed with (their hashes; with `c.lock_prefix`, `lock` added if the lock still
-- holds the value the claim gave it).
local function claimed_before(prefix, key, c)
  local tasks = {}
  local kept = redis.call('HGET', key, 'then_claimed') or ''
  for id, fence in string.gmatch(kept, '(%S+):(%d+)') do
    local fields = redis.call('HGETALL', task_key(prefix, id))
    if field_of(fields, 'status') == 'active' and field_of(fields, 'fence') == fence then
      local value = field_of(fields, 'worker_id') .. ':' .. fence
      if c and c.lock_prefix and redis.call('GET', c.lock_prefix .. id) == value then
        fields[#fields + 1] = 'lock'
        fields[#fields + 1] = value
      end
      tasks[#tasks + 1] = fields
    end
  end
  return tasks
end

-- Per-minute counters of the stats: tasks that finished (any terminal status), and of
-- them the ones that failed.
local function count_finished(prefix, at, ttl, status)
  local minute = math.floor(at / 60000)
  local finished = prefix .. K['finished'] .. minute
  redis.call('INCR', finished)
  redis.call('PEXPIRE', finished, ttl)
  if status == 'failed' then
    local failed = prefix .. K['failures'] .. minute
    redis.call('INCR', failed)
    redis.call('PEXPIRE', failed, ttl)
  end
end

-- Write a task's new state `o` (decided by the caller: status, score, fields to set and
-- to drop, duration) over its `state` (read_state's fields), moving it
-- from the state set of `from` to that of `o.status`. `limits` bounds the bookkeeping.
local function apply_outcome(prefix, queue, id, state, from, o, limits)
  local key = task_key(prefix, id)
  local group = state[7]
  redis.call('ZREM', state_key(prefix, from), id)
  if group and from == 'waiting' then
    group_leave(prefix, id, group)
  elseif group and from == 'active' then
    group_end(prefix, id, group)
  end
  local flat = {}
  for field, value in pairs(o.set) do
    flat[#flat + 1] = field
    flat[#flat + 1] = value
  end
  if #flat > 0 then
    redis.call('HSET', key, unpack(flat))
  end
  if #o.unset > 0 then
    redis.call('HDEL', key, unpack(o.unset))
  end
  local target = state_key(prefix, o.status)
  if o.status == 'waiting' then
    -- `ahead`: before every task of its priority (sequence 0; enqueues count from 1),
    -- as a task taken from a dead worker goes, having been claimed in its turn already.
    local seq = o.ahead and 0 or redis.call('INCR', prefix .. K['seq'])
    local score = wait_score(tonumber(state[3] or '0'), seq)
    if group then
      group_enter(prefix, id, group, score)  -- `ahead`: first of its group
    else
      redis.call('ZADD', target, score, id)
    end
    wake(prefix)
  elseif o.status == 'delayed' then
    local earliest = next_due(prefix)
    redis.call('ZADD', target, o.score, id)
    if earliest < 0 or o.score < earliest then
      wake(prefix)  -- a new earliest due time: idle workers must sleep less
    end
  else
    redis.call('ZADD', target, o.score, id)
    count_finished(prefix, o.score, limits.finished_ttl, o.status)
    if o.status == 'completed' and o.duration >= 0 then
      local durations = prefix .. K['durations'] .. state[4]
      redis.call('LPUSH', durations, o.duration)
      redis.call('LTRIM', durations, 0, limits.durations_kept - 1)
    end
  end
  reindex(prefix, id, state[4], state[5], from, o.status)
  announce(prefix, queue, id, state[4], o.status)
end

local function read_state(prefix, id)
  return redis.call('HMGET', task_key(prefix, id), 'status', 'fence', 'priority', 'name', 'ix',
    'outcome_fence', 'group')
end

-- The id index entry `owner_key` names, or nil when it names the task's own hash `key`
-- instead: on a Cluster the entry is in a slot of its own, and the caller keeps it.
local function id_index(key, owner_key)
  if owner_key == key then
    return nil
  end
  return owner_key
end

-- Delete a task that is not active, with its index entries, and reserve its id for
-- `window` ms, in the queue and in the id index (`owner_key`, see id_index) alike.
-- Returns 0, -1 if there is no such task, -4 if it is active.
local function forget(prefix, queue, id, window, owner_key)
  local key = task_key(prefix, id)
  owner_key = id_index(key, owner_key)
  local state = redis.call('HMGET', key, 'status', 'fp', 'name', 'tokens', 'group')
  if not state[1] then
    return -1
  end
  if state[1] == 'active' then
    return -4
  end
  redis.call('ZREM', state_key(prefix, state[1]), id)
  if state[5] and state[1] == 'waiting' then
    group_leave(prefix, id, state[5])
  end
  reindex(prefix, id, state[3], 0, state[1], nil)
  redis.call('ZREM', prefix .. K['ids'], id)
  if state[4] then
    for token in string.gmatch(state[4], '%S+') do
      redis.call('ZREM', prefix .. K['token'] .. token, id)
    end
  end
  redis.call('DEL', key)
  redis.call('SET', prefix .. K['removed'] .. id, state[2], 'PX', window)
  if owner_key then
    redis.call('SET', owner_key, queue, 'PX', window)
  end
  announce(prefix, queue, id, state[3], 'removed')
  return 0
end
