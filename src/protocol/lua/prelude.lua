-- The helpers shared by the lock protocol's scripts, prepended to each one
-- (src/scripts.rs). Defining them runs no Redis command: a script does only
-- what its own body calls.

-- Called first by every script that reads the clock: before Redis 5, a
-- script that writes after reading the clock must switch to effects
-- replication before its first write; from Redis 5 on this is the default
-- (and the call a no-op).
local function replicate_effects()
  if redis.replicate_commands then redis.replicate_commands() end
end

-- The Redis server's clock: returns it in microseconds, then in
-- milliseconds.
local function clock()
  local t = redis.call('TIME')
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return now_us, math.floor(now_us / 1000)
end

-- The lock key's value if it is a string, `false` if there is no such key,
-- and `true` if it holds another type (held by someone else: never ours,
-- never modified). The type is told by the error code of the `GET`
-- (`WRONGTYPE`, the first word of Redis's error reply), which needs no
-- `TYPE` command in the ACL. Any other error (such as `NOPERM`) is raised as
-- Redis raises it, by the same `GET` again.
local function lock_value(key)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' and value.err then
    if string.sub(value.err, 1, 9) == 'WRONGTYPE' then return true end
    return redis.call('GET', key)
  end
  return value
end

-- Drops the fair-queue entries at the head of `queue` whose deadline (in
-- `deadlines`) passed before `now` (ms, Redis clock): waiters that crashed
-- or stopped asking. Returns the live head, or nil if the queue is empty.
local function prune_queue(queue, deadlines, now)
  while true do
    local head = redis.call('ZRANGE', queue, 0, 0)[1]
    if not head then return nil end
    local deadline = tonumber(redis.call('ZSCORE', deadlines, head))
    if deadline and deadline >= now then return head end
    redis.call('ZREM', queue, head)
    redis.call('ZREM', deadlines, head)
  end
end
