-- KEYS leases; ARGV ttl ms, then one expected value per lease. For each:
-- 1 renewed, 0 held by another, -1 held by nobody.
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    out[i] = 1
  elseif v then
    out[i] = 0
  else
    out[i] = -1
  end
end
return out
