--[[ advance_schedule: record a firing and move the schedule to its next slot, if it is
still at the slot the caller read (another process may have fired it, or an operator
changed it, since).

KEYS[1] the schedule's hash   KEYS[2] due zset

ARGV[1] name   ARGV[2] the next slot the caller read   ARGV[3] the new next slot
ARGV[4] the last slot fired ('' none)   ARGV[5] its task's id ('' none)
ARGV[6] slots fired   ARGV[7] slots skipped

Returns 1 moved, 0 not at that slot any more.
]]
if redis.call('HGET', KEYS[1], 'next_at') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'next_at', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'last_slot', ARGV[4], 'last_task_id', ARGV[5])
end
redis.call('HINCRBY', KEYS[1], 'fired', ARGV[6])
redis.call('HINCRBY', KEYS[1], 'skipped', ARGV[7])
return 1
