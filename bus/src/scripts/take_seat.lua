-- Takes a seat. ARGV room ('' to matchmake), player, capacity, hold ms, id
-- for a new room. Returns {room, created} ({'', 0}: full).
-- Runs after seats.lua (now, expire_seats, hold_seat).
local t = now()
expire_seats(t)
local player, cap, untl = ARGV[2], tonumber(ARGV[3]), t + tonumber(ARGV[4])
local function capacity(room) return tonumber(redis.call('HGET', KEYS[2], room)) or cap end
if ARGV[1] ~= '' then
  local room = ARGV[1]
  local seats = redis.call('ZSCORE', KEYS[1], room)
  if not seats then
    redis.call('ZADD', KEYS[1], 0, room)
    redis.call('HSET', KEYS[2], room, cap)
    hold_seat(room, player, untl)
    return {room, 1}
  end
  local mine = redis.call('ZSCORE', KEYS[3], room .. '/' .. player)
  if not mine and tonumber(seats) >= capacity(room) then return {'', 0} end
  hold_seat(room, player, untl)
  return {room, 0}
end
-- The fullest room with a free seat by its own capacity; rooms are listed
-- fullest first, so the full ones come first: look past them in pages.
local offset = 0
while true do
  local page = redis.call('ZREVRANGE', KEYS[1], offset, offset + 63, 'WITHSCORES')
  if #page == 0 then break end
  for i = 1, #page, 2 do
    if tonumber(page[i + 1]) < capacity(page[i]) then
      hold_seat(page[i], player, untl)
      return {page[i], 0}
    end
  end
  offset = offset + 64
end
redis.call('ZADD', KEYS[1], 0, ARGV[5])
redis.call('HSET', KEYS[2], ARGV[5], cap)
hold_seat(ARGV[5], player, untl)
return {ARGV[5], 1}
