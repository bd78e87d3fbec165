-- KEYS leases; ARGV worker. Deletes each lease still held by that worker
-- (its value is `worker:epoch`); returns how many.
local n = 0
for _, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v and string.match(v, '^(.*):[^:]*$') == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
