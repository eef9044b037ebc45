-- acquire: acquisition with a fencing token. `SET key id NX PX ttl` (the
-- 1.0 format; one `SET` per attempt, as 1.0) and, only if that took the
-- lock, the next token from the counter (see grant.lua), in one atomic
-- step, so tokens grow in the order locks are granted.
--
-- An attempt may be sent twice (see `LockManager::run`): if the key already
-- holds our id, the first one took the lock, and the script grants it again
-- with the token it got then.
--
-- KEYS[1] lock key; KEYS[2] fencing counter; KEYS[3] the key that keeps the
-- grant's token (all in the lock key's cluster slot).
-- ARGV[1] lock id; ARGV[2] TTL in milliseconds; ARGV[3] the resource's
-- counter of an earlier version, or `''` (same slot).
-- Returns `{1, token}` if granted, `{0, pttl}` if the lock is held by
-- someone else (`pttl` its remaining milliseconds, -1 if it has no TTL).
local legacy = ARGV[3] ~= '' and ARGV[3] or nil
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return grant(KEYS[1], KEYS[2], KEYS[3], legacy, ARGV[2], false)
end
if lock_value(KEYS[1]) == ARGV[1] then
  return grant(KEYS[1], KEYS[2], KEYS[3], legacy, ARGV[2], true)
end
return {0, redis.call('PTTL', KEYS[1])}
