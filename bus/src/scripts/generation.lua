-- KEYS generation; ARGV candidate. The generation present, else the
-- candidate, set now (no TTL: only a loss of the data removes it). Kept as
-- a string: a Lua number would round a 64-bit value.
local present = redis.call('GET', KEYS[1])
if present then return present end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
