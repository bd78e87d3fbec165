-- Frees expired seats; ARGV room. Returns {seats or false, capacity}.
-- Runs after seats.lua (now, expire_seats, hold_seat).
expire_seats(now())
return {redis.call('ZSCORE', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1])}
