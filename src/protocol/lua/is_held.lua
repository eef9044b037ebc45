-- is_held: whether the lock is ours.
--
-- KEYS[1] lock key. ARGV[1] lock id.
-- Returns 1 or 0 (0 also for a key of another type).
if lock_value(KEYS[1]) == ARGV[1] then return 1 end
return 0
