-- extend: owner-checked extension. Resets the TTL (of the lock and of the
-- key that keeps its token) only if the key still holds our id.
--
-- KEYS[1] lock key; KEYS[2] (optional) the key that keeps its token.
-- ARGV[1] lock id; ARGV[2] new TTL in milliseconds.
-- Returns 1 if the TTL was reset, 0 if the lock is no longer ours (in which
-- case nothing is changed: an expired lock is not brought back).
if lock_value(KEYS[1]) == ARGV[1] then
  if KEYS[2] then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
