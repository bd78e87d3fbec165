-- ARGV room, hold ms, the members' highest id, then the room's players;
-- KEYS[4] the person-id counter, raised to that id first.
-- Runs after seats.lua (now, expire_seats, hold_seat).
local top = tonumber(ARGV[3])
if tonumber(redis.call('GET', KEYS[4]) or '0') < top then redis.call('SET', KEYS[4], ARGV[3]) end
local t = now()
expire_seats(t)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local untl = t + tonumber(ARGV[2])
for i = 4, #ARGV do hold_seat(ARGV[1], ARGV[i], untl) end
return 1
