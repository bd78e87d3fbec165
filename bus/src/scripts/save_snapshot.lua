-- KEYS lease, snapshot; ARGV lease value, epoch, data, ttl ms. Returns 1
-- saved, -1 nobody holds the lease, 0 another holds it or a newer epoch
-- has written.
local cur = redis.call('HGET', KEYS[2], 'epoch')
if cur and tonumber(cur) > tonumber(ARGV[2]) then return 0 end
local held = redis.call('GET', KEYS[1])
if not held then return -1 end
if held ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'data', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
