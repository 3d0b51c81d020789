--[[ set_limits: replace a queue's flow limits.

KEYS[1] limits hash   KEYS[2] meta hash   KEYS[3] marker zset   KEYS[4] wait zset
KEYS[5] parked names set

ARGV[1] the queue's key prefix, conveyor:{<queue>}:
ARGV[2] the limits, JSON: an object of the limits hash's fields (see _lib), {} for none

A group's new limits apply from its next turn: the next start or end of one of its tasks,
or the opening of its rate window.

Parked tasks of a type that is no longer limited go back to the wait set at once, so a
queue left without limits parks nothing and reads no limits again. Idle workers are woken
to claim under the new limits.
]]
local prefix = ARGV[1]
local fields = cjson.decode(ARGV[2])
-- A rate that goes away takes its window of recent starts with it.
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if fields[field] == nil then
    local scope = string.match(field, '^(%a+:.+):rate$')
    if scope then
      redis.call('DEL', prefix .. K['starts'] .. scope)
    elseif field == 'rate' then
      redis.call('DEL', prefix .. K['starts'] .. 'queue')
    end
  end
end
redis.call('DEL', KEYS[1])
local flat, typed, claims = {}, {}, false
for field, value in pairs(fields) do
  flat[#flat + 1] = field
  flat[#flat + 1] = value
  local name = string.match(field, '^type:(.+):%a+$')
  if name then
    typed[name] = true
  end
  -- Groups' limits are read when a group gets its turn, not by every claim.
  claims = claims or string.match(field, '^group:') == nil
end
if #flat > 0 then
  redis.call('HSET', KEYS[1], unpack(flat))
end
if claims then
  redis.call('HSET', KEYS[2], 'limited', '1')
else
  redis.call('HDEL', KEYS[2], 'limited')
end
for _, name in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  if not typed[name] then
    local parked = prefix .. K['parked'] .. name
    local back = redis.call('ZRANGE', parked, 0, -1, 'WITHSCORES')
    for i = 1, #back, 2 do
      if redis.call('HGET', task_key(prefix, back[i]), 'status') == 'waiting' then
        redis.call('ZADD', KEYS[4], back[i + 1], back[i])
      end
    end
    redis.call('DEL', parked)
    redis.call('SREM', KEYS[5], name)
  end
end
wake(prefix)
return 0
