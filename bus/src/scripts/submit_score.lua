-- KEYS scores, colours; ARGV name, score, colour, kept.
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if old and tonumber(old) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local keep = tonumber(ARGV[4])
local out = redis.call('ZRANGE', KEYS[1], 0, -keep - 1)
for _, name in ipairs(out) do redis.call('HDEL', KEYS[2], name) end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -keep - 1)
return 1
