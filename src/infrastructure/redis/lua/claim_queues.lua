--[[ claim_queues: one claim over several queues, for a worker serving them in an order.
Their keys are in several hash slots: only where the queues live on one Redis (on a
Cluster the claim goes queue by queue, with claim_tasks).

KEYS   for each queue, in the order of ARGV: wait zset, delayed zset, active zset,
       marker zset, meta hash, fence counter, sequence counter (named for routing and
       the reader; the helpers build them from the prefix)

ARGV[1] the claim, JSON as in claim_tasks; its limit is the slots to fill in all
ARGV[2] how many due delayed tasks of a queue to promote at most (limits.PROMOTE_LIMIT)
ARGV[3], ARGV[4], ARGV[5] the first queue's key prefix conveyor:{<queue>}:, name, and
        quota; then three more per queue

Each queue takes up to its quota, in order; then the slots left go to the queues in the
same order, each taking what it has ready, until none is left. A queue's due delayed
tasks are promoted before its first take, so they count as ready.

Returns {next_due, task, task, ...} as claim_tasks does; next_due, when nothing was
claimed, is the soonest of the unpaused queues' times to look again (next_wake: a due
time, or a rate limit opening), -1 if none has one.
]]
local c = cjson.decode(ARGV[1])
local promote = tonumber(ARGV[2])
local queues = {}
for i = 3, #ARGV, 3 do
  queues[#queues + 1] = {prefix = ARGV[i], name = ARGV[i + 1], quota = tonumber(ARGV[i + 2])}
end
local left = c.limit
local reply = {-1}

local function take(q, wanted)
  if wanted <= 0 or q.short then
    return
  end
  if not q.promoted then
    promote_due(q.prefix, q.name, c.now, promote)
    q.promoted = true
  end
  c.limit = wanted
  local claimed, paused = claim_ready(q.prefix, q.name, c)
  publish(q.prefix, nil)  -- each queue's transitions on its own channel
  q.paused, q.short = paused, #claimed < wanted
  for _, fields in ipairs(claimed) do
    reply[#reply + 1] = fields
  end
  left = left - #claimed
end

for _, q in ipairs(queues) do
  take(q, math.min(q.quota, left))
end
for _, q in ipairs(queues) do
  take(q, left)
end
if #reply == 1 then
  for _, q in ipairs(queues) do
    local due = q.paused and -1 or next_wake(q.prefix)
    if due >= 0 and (reply[1] < 0 or due < reply[1]) then
      reply[1] = due
    end
  end
end
return reply
