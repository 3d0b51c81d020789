--[[ write_fenced: one of a handler's own writes, applied only while the execution that asks
still holds its task, in the same atomic step as that check.

KEYS[1] task hash   KEYS[2] the key written (an effect key, in the queue's hash slot)

ARGV[1] fencing token the caller holds
ARGV[2] the command (the caller allows only single-key writes: SET, DEL, PEXPIRE, INCRBY,
        HSET, HINCRBY, RPUSH, SADD)
ARGV[3..] its arguments after the key

Returns {0, reply} written (a status reply such as SET's OK as 1), {-1} no such task,
{-2} not active or the token is stale, {-6, message} Redis refused the command.
]]
local state = redis.call('HMGET', KEYS[1], 'status', 'fence')
if not state[1] then
  return {-1}
end
if state[1] ~= 'active' or state[2] ~= ARGV[1] then
  return {-2}
end
local reply = redis.pcall(ARGV[2], KEYS[2], unpack(ARGV, 3))
if type(reply) == 'table' then
  if reply.err then
    return {-6, reply.err}
  end
  reply = 1
end
return {0, reply}
