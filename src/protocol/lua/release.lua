-- release: owner-checked release. Deletes the key (and the key that keeps
-- its token) only if it still holds our id, and announces the release on
-- the key's channel so that waiters try at once.
--
-- KEYS[1] lock key; KEYS[2] fair queue; KEYS[3] its deadlines; KEYS[4]
-- (optional) the key that keeps the lock's fencing token.
-- ARGV[1] lock id; ARGV[2] release channel; ARGV[3] `PUBLISH`, or
-- `SPUBLISH` on a Redis Cluster (sharded pub/sub).
-- Publishes the id of the fair queue's live head (only that waiter may take
-- the lock), or `*` (everybody may try). Returns 1 if the lock was deleted,
-- 0 if it had expired or belongs to another owner (left untouched, and
-- nothing is published).
replicate_effects()
if lock_value(KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
if KEYS[4] then
  redis.call('DEL', KEYS[4])
end
local head
-- Only fair waiters have a queue: without one, skip the clock and pruning.
if redis.call('EXISTS', KEYS[2]) == 1 then
  local _, now = clock()
  head = prune_queue(KEYS[2], KEYS[3], now)
end
-- pcall: a user without pub/sub rights (Redis 7 ACLs) still releases;
-- waiters then find out by polling.
redis.pcall(ARGV[3], ARGV[2], head or '*')
return 1
