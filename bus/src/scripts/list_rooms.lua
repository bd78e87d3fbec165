-- Frees expired seats; ARGV the last rank to list. Returns {room, seats,
-- capacity} per room, fullest first.
-- Runs after seats.lua (now, expire_seats, hold_seat).
expire_seats(now())
local page = redis.call('ZREVRANGE', KEYS[1], 0, ARGV[1], 'WITHSCORES')
local out = {}
for i = 1, #page, 2 do
  out[#out + 1] = {page[i], page[i + 1], redis.call('HGET', KEYS[2], page[i]) or false}
end
return out
