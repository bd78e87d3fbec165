-- ARGV room.
-- Runs after seats.lua (now, expire_seats, hold_seat).
expire_seats(now())
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return 1 end
if tonumber(s) > 0 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
