--[[ save_schedule: store a schedule's definition and its next slot (in the schedules' own
slot; run without _lib, by the schedule store).

KEYS[1] the schedule's hash   KEYS[2] due zset (active schedules by next slot)
KEYS[3] names zset (every schedule by creation time)

ARGV[1] name   ARGV[2] definition (JSON)   ARGV[3] next slot (ms), '' while paused
ARGV[4] 'create' (refused if the name exists) or 'replace' (refused unless it does)
ARGV[5] creation time (ms)

Returns 1 stored, 0 the name exists (create), -1 no such schedule (replace).
The firing record (last slot, task, counts) is left as it is.
]]
local exists = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[4] == 'create' and exists then
  return 0
end
if ARGV[4] == 'replace' and not exists then
  return -1
end
redis.call('HSET', KEYS[1], 'def', ARGV[2])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], 'next_at')
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[1], 'next_at', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[1])
return 1
