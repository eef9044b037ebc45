-- The grant of a fencing token, shared by the acquire scripts that give one
-- (prepended after prelude.lua; defining it runs no Redis command).
--
-- `grant(lock, counter, token_key, legacy, ttl, ours)` completes the grant
-- of `lock` (just set by the caller's `SET NX PX`, or already ours if
-- `ours`) and returns `{1, token}`, or an error reply.
--
-- - A lock that is already ours (an attempt sent again after its answer was
--   lost) keeps the token of its grant, read back from `token_key`, and both
--   keys get the new ttl.
-- - Otherwise the token is the next value of `counter` (shared by all the
--   resources of a prefix, or of a hash slot). If `legacy` (the resource's
--   counter of an earlier version, `{K}:fence`; nil for none) holds a
--   count, `counter` is first raised to it and `legacy` deleted, so that the
--   token is above every token given for the resource before. The token is
--   kept in `token_key` with the lock's ttl.
--
-- `legacy` comes in ARGV, not KEYS, because it rarely exists: during a
-- Cluster slot migration, a script whose declared keys are not all on the
-- node fails with `TRYAGAIN`, and `legacy` is only read on a grant. Scripts
-- do not roll back: if no token can be given (a counter that holds no
-- count, an `INCR` that would overflow), the lock is deleted again and the
-- error returned, so no lock is left without a token.

-- Whether the decimal count `a` is greater than `b` (of any length).
local function greater(a, b)
  a = string.gsub(a, '^0+', '')
  b = string.gsub(b, '^0+', '')
  if #a ~= #b then return #a > #b end
  return a > b
end

local function next_token(counter, legacy)
  local current = redis.pcall('GET', counter)
  if type(current) == 'table' then return current end
  if current and not string.match(current, '^%d+$') then
    return redis.error_reply('the fencing counter ' .. counter .. ' does not hold a count')
  end
  local old = legacy and redis.pcall('GET', legacy)
  if type(old) == 'table' and string.sub(old.err, 1, 9) ~= 'WRONGTYPE' then return old end
  if type(old) == 'string' and string.match(old, '^%d+$') then
    if not current or greater(old, current) then
      redis.call('SET', counter, old)
    end
    redis.call('DEL', legacy)
  end
  return redis.pcall('INCR', counter)
end

local function grant(lock, counter, token_key, legacy, ttl, ours)
  if ours then
    redis.call('PEXPIRE', lock, ttl)
    local kept = redis.call('GET', token_key)
    if kept then
      redis.call('PEXPIRE', token_key, ttl)
      return {1, tonumber(kept)}
    end
  end
  local token = next_token(counter, legacy)
  if type(token) == 'table' then
    redis.call('DEL', lock)
    return token
  end
  redis.call('SET', token_key, token, 'PX', ttl)
  return {1, token}
end
