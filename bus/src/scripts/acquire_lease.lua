-- KEYS lease, epoch counter; ARGV worker, ttl ms, min epoch, counter ttl
-- ms. Returns the new epoch, or 0 if the lease is held. The epoch is above
-- the counter, `min epoch` and the server's clock in ms: a counter lost
-- with Redis's data can never hand out an epoch seen before.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local e = redis.call('INCR', KEYS[2])
local floor = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if e < floor then e = floor end
if e <= tonumber(ARGV[3]) then e = tonumber(ARGV[3]) + 1 end
local es = string.format('%.0f', e)
redis.call('SET', KEYS[2], es, 'PX', ARGV[4])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. es, 'NX', 'PX', ARGV[2])
return e
