-- acquire_plain: acquisition without a fencing token (a Redlock master's
-- part). The 1.0 `SET key id NX PX ttl`, granted again to the same id (a
-- repeated send).
--
-- KEYS[1] lock key. ARGV[1] lock id; ARGV[2] TTL in milliseconds.
-- Returns `{1, 0}` if granted, `{0, pttl}` if held by someone else (a key
-- of another type too).
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, 0}
end
if lock_value(KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, 0}
end
return {0, redis.call('PTTL', KEYS[1])}
