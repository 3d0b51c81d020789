--[[ remove_task: delete a task that is not active, reserving its id for a while.

KEYS[1] task hash           (named so a cluster routes the call; _lib's forget uses it)
KEYS[2] removal reservation
KEYS[3] the id index entry, conveyor:id:<id>; or the task hash again (see id_index)

ARGV[1] task id
ARGV[2] reservation time (ms): how long the id keeps answering "removed"
ARGV[3] the queue's key prefix, conveyor:{<queue>}:
ARGV[4] the queue's name

Returns 0 removed, -1 no such task, -4 the task is active
]]
return publish(ARGV[3], forget(ARGV[3], ARGV[4], ARGV[1], ARGV[2], KEYS[3]))
