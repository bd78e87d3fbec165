-- ARGV room, player.
-- Runs after seats.lua (now, expire_seats, hold_seat).
expire_seats(now())
if redis.call('ZREM', KEYS[3], ARGV[1] .. '/' .. ARGV[2]) == 1 then
  local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if s and tonumber(s) > 0 then redis.call('ZINCRBY', KEYS[1], -1, ARGV[1]) end
end
return 0
