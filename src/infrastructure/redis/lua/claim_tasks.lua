--[[ claim_tasks: promote due delayed tasks, then take the first ready ones.

KEYS[1] wait zset      KEYS[2] delayed zset   KEYS[3] active zset   KEYS[4] marker zset
KEYS[5] meta hash      KEYS[6] fence counter  KEYS[7] sequence counter
        (named for routing and the reader; the helpers build them from the prefix)

ARGV[1] the queue's key prefix, conveyor:{<queue>}:
ARGV[2] the queue's name
ARGV[3] the claim, JSON: {worker, limit, now, deadline (the lease's end, ms),
        lock_prefix and lock_ttl (ms): given only where the lock's one master is this
        Redis, to take each task's lock `lock:task:<id>` with the claim}
ARGV[4] how many due delayed tasks to promote at most (limits.PROMOTE_LIMIT)

Returns {next_due, task, task, ...}: the claimed tasks' hashes (status already active,
fence and worker set; `lock` = the lock's value when it was taken); next_due is the
earliest delayed due time when nothing was claimed and the queue is not paused (-1 if
there is none).
]]
local prefix, queue = ARGV[1], ARGV[2]
local c = cjson.decode(ARGV[3])
promote_due(prefix, queue, c.now, tonumber(ARGV[4]))
local claimed, paused = claim_ready(prefix, queue, c)
return publish(prefix, claim_reply(prefix, {}, claimed, paused))
