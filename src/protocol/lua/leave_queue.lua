-- leave_queue: leaves the fair queue (a waiter that gave up, timed out or
-- was aborted). If it was the head and the lock is free, the next waiter is
-- told.
--
-- KEYS[1] lock key; KEYS[2] queue; KEYS[3] its deadlines.
-- ARGV[1] waiter id; ARGV[2] release channel; ARGV[3] `PUBLISH` or
-- `SPUBLISH`.
-- Returns 1 if it was queued, 0 if not.
replicate_effects()
local _, now = clock()
local was_head = redis.call('ZRANGE', KEYS[2], 0, 0)[1] == ARGV[1]
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if was_head and redis.call('EXISTS', KEYS[1]) == 0 then
  local head = prune_queue(KEYS[2], KEYS[3], now)
  if head then
    redis.pcall(ARGV[3], ARGV[2], head)
  end
end
return removed
