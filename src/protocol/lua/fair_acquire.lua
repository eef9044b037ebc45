-- fair_acquire: like acquire.lua, but only the head of a FIFO queue in
-- Redis may take the lock, so waiters of all processes are served in the
-- order they arrived.
--
-- Each call enqueues the waiter (once: its first arrival keeps its place)
-- and pushes its entry's deadline to now + ARGV[3]; a waiter that stops
-- calling (crashed, gave up) is dropped once its deadline passed, so it
-- never blocks the queue for long. The queue's keys expire when nobody
-- refreshes them. When pruning made another waiter the head while the lock
-- is free, that waiter is told on the channel at once.
--
-- KEYS[1] lock key; KEYS[2] fencing counter; KEYS[3] queue; KEYS[4] its
-- deadlines; KEYS[5] the key that keeps the grant's token.
-- ARGV[1] lock id (also the waiter's queue id); ARGV[2] TTL ms; ARGV[3]
-- queue entry lifetime ms; ARGV[4] release channel; ARGV[5] `PUBLISH` or
-- `SPUBLISH`; ARGV[6] the resource's counter of an earlier version, or `''`
-- (same slot).
-- Returns `{1, token}` if granted, `{0, pttl}` if not (pttl 0: the lock is
-- free but another waiter is first in line).
replicate_effects()
local legacy = ARGV[6] ~= '' and ARGV[6] or nil
-- Nobody queued: a free lock is granted at once.
if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return grant(KEYS[1], KEYS[2], KEYS[5], legacy, ARGV[2], false)
end
-- Already ours (an earlier call of this waiter was granted but its answer
-- was lost): keep it, with the token it was granted.
if lock_value(KEYS[1]) == ARGV[1] then
  return grant(KEYS[1], KEYS[2], KEYS[5], legacy, ARGV[2], true)
end
local now_us, now = clock()
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  redis.call('ZADD', KEYS[3], now_us, ARGV[1])
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[1])
local first = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
local head = prune_queue(KEYS[3], KEYS[4], now)
if head == ARGV[1] and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  return grant(KEYS[1], KEYS[2], KEYS[5], legacy, ARGV[2], false)
end
local keep = tonumber(ARGV[3]) * 2
redis.call('PEXPIRE', KEYS[3], keep)
redis.call('PEXPIRE', KEYS[4], keep)
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -2 then
  pttl = 0
  if head ~= first then
    redis.pcall(ARGV[5], ARGV[4], head)
  end
end
return {0, pttl}
