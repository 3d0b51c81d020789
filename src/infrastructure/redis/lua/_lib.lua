--[[ _lib: helpers shared by every script; Scripts prepends this file to each one.

Keys built here, all inside the queue's hash tag (so a cluster keeps them in one slot),
follow keys.py (QueueKeys) and take the queue's key prefix, `conveyor:{<queue>}:`:
  <prefix>task:<id>             the task's hash
  <prefix><state set>           wait, delayed, active, completed, failed, cancelled
  <prefix>idx:<status>:<name>   tasks of one status and name, scored by creation order
  <prefix>ids                   every task id, for prefix search (all scores 0)
  <prefix>tok:<token>           tasks whose name or payload has the token
  <prefix>names                 every task name the queue has seen
  <prefix>removed:<id>          a removed task's fingerprint, for the idempotency window
One key lives outside the queue's slot, and is always passed in KEYS: the id index entry
conveyor:id:<id>, naming the queue that holds the id (keys.py task_owner).
Channels: <prefix>events:<DB> (every transition), <prefix>control:<DB> (stop requests to
workers), where DB, the database number, is a constant that Scripts puts above this file:
pub/sub is server-wide, and a script cannot ask which database it runs on.
]]
local STATE_SETS = {
  waiting = 'wait', delayed = 'delayed', active = 'active',
  completed = 'completed', failed = 'failed', cancelled = 'cancelled',
}

local function state_key(prefix, status)
  return prefix .. STATE_SETS[status]
end

local function index_key(prefix, status, name)
  return prefix .. 'idx:' .. status .. ':' .. name
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

local function announce(prefix, queue, id, name, status)
  redis.call('PUBLISH', prefix .. 'events:' .. DB,
    cjson.encode({id = id, queue = queue, name = name, status = status}))
end

local function wait_score(priority, seq)
  return (priority + 1048576) * 4294967296 + seq % 4294967296
end

-- Delete a task that is not active, with its index entries, and reserve its id for
-- `window` ms, in the queue and in the id index (`owner_key`) alike.
-- Returns 0, -1 if there is no such task, -3 if it is active.
local function forget(prefix, queue, id, window, owner_key)
  local key = prefix .. 'task:' .. id
  local state = redis.call('HMGET', key, 'status', 'fp', 'name', 'tokens')
  if not state[1] then
    return -1
  end
  if state[1] == 'active' then
    return -3
  end
  redis.call('ZREM', state_key(prefix, state[1]), id)
  reindex(prefix, id, state[3], 0, state[1], nil)
  redis.call('ZREM', prefix .. 'ids', id)
  if state[4] then
    for token in string.gmatch(state[4], '%S+') do
      redis.call('ZREM', prefix .. 'tok:' .. token, id)
    end
  end
  redis.call('DEL', key)
  redis.call('SET', prefix .. 'removed:' .. id, state[2], 'PX', window)
  redis.call('SET', owner_key, queue, 'PX', window)
  announce(prefix, queue, id, state[3], 'removed')
  return 0
end
