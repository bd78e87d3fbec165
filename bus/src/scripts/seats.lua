-- Lua shared by the seat scripts; KEYS[1] directory, KEYS[2] capacities,
-- KEYS[3] seats. `now()` is the server's clock in ms; `expire_seats` frees
-- the seats whose hold ran out, so every count read after it is live.
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function expire_seats(t)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', t)
  for _, seat in ipairs(gone) do
    local room = string.match(seat, '^(.*)/')
    local s = redis.call('ZSCORE', KEYS[1], room)
    if s and tonumber(s) > 0 then redis.call('ZINCRBY', KEYS[1], -1, room) end
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', t) end
end
-- Holds a seat until `untl`; true if the seat is new (and counted).
local function hold_seat(room, player, untl)
  local seat = room .. '/' .. player
  local old = redis.call('ZSCORE', KEYS[3], seat)
  if old then
    if tonumber(old) < untl then redis.call('ZADD', KEYS[3], untl, seat) end
    return false
  end
  redis.call('ZADD', KEYS[3], untl, seat)
  redis.call('ZINCRBY', KEYS[1], 1, room)
  return true
end
