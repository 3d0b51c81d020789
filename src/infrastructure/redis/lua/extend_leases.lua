--[[ extend_leases: a worker renews the leases of the tasks it runs, all in one call (with
their locks, where the claim took them): the lease of each task it still holds is pushed
to the new deadline.

KEYS[1] active zset     score = lease deadline (ms)
KEYS[1 + i] the i-th task's hash
KEYS[1 + n + i] (optional) the i-th task's lock, for the first m tasks (m given below)

ARGV[1] the new deadline (ms)
ARGV[2] the locks' TTL (ms)
ARGV[3] m: how many of the tasks (the first ones) have a lock to renew here
ARGV[3 + 3i - 2], ARGV[3 + 3i - 1], ARGV[3 + 3i]: the i-th task's id, the token the worker
        holds, and its lock's value ('' for none)

Returns one code per task: 0 held, 3 held and an operator asked to cancel it, -2 lost
(not active, or another token: someone else may run it now). A lost task's lock is left
alone; a held task's lock is renewed if it still holds the worker's value, else the task
counts as lost.
]]
local n = (#ARGV - 3) / 3
local m = tonumber(ARGV[3])
local codes = {}
for i = 1, n do
  local id, fence, value = ARGV[3 * i + 1], ARGV[3 * i + 2], ARGV[3 * i + 3]
  local state = redis.call('HMGET', KEYS[1 + i], 'status', 'fence', 'cancel_requested')
  local code = -2
  if state[1] == 'active' and state[2] == fence then
    code = state[3] and 3 or 0
    if i <= m and redis.call('GET', KEYS[1 + n + i]) == value then
      redis.call('PEXPIRE', KEYS[1 + n + i], ARGV[2])
    elseif i <= m then
      code = -2  -- the lock was lost (expired and taken): stop before a second run overlaps
    end
  end
  if code >= 0 then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], id)
  end
  codes[i] = code
end
return codes
